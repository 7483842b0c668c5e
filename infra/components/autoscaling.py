"""How the serving Deployment scales: KEDA's ScaledObject on queue depth per replica, with
p95 latency as a guardrail and the guide's scale-up and scale-down behaviour."""

from __future__ import annotations

from infra.components.monitoring import PROMETHEUS_URL, QUEUE_DEPTH, REQUEST_DURATION
from infra.config import Serving as ServingConfig

# How often KEDA reads the triggers itself (to activate or idle the Deployment): the scrape
# interval. Between 1 and N replicas the HPA that KEDA makes polls them on its own period.
POLLING_INTERVAL_S = 15
# How long every trigger stays inactive before a scale-to-zero Deployment goes to 0: the
# scale-down stabilisation window, so zero is never reached faster than one replica less.
COOLDOWN_PERIOD_S = 300


def queue_depth_query(series: str) -> str:
    """Queued requests summed over the pods; KEDA's AverageValue target divides it by the
    replicas."""
    return f"sum({QUEUE_DEPTH}{{{series}}})"


def p95_latency_query(series: str) -> str:
    """p95 of the requests the pods answered over the last 2 minutes (8 scrapes of 15 s)."""
    return (f"histogram_quantile(0.95, sum by (le) "
            f'(rate({REQUEST_DURATION}_bucket{{{series},outcome="success"}}[2m])))')


def scaled_object_spec(config: ServingConfig, *, namespace: str, app: str) -> dict:
    """KEDA's ScaledObject for the serving Deployment: queue depth per replica drives it, p95
    latency over its target adds replicas whatever the queue says (the HPA takes the larger
    of the two), with the guide's behaviour. No CPU trigger: nothing serves metrics.k8s.io
    here, and an HPA with a metric it cannot read never scales down."""
    series = f'namespace="{namespace}",service="{app}"'  # as the ServiceMonitor labels them
    return {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": app},
        "minReplicaCount": config.min_replicas,
        "maxReplicaCount": config.max_replicas,
        "pollingInterval": POLLING_INTERVAL_S,
        "cooldownPeriod": COOLDOWN_PERIOD_S,
        "advanced": {"horizontalPodAutoscalerConfig": {"name": app,
                                                       "behavior": hpa_behavior()}},
        "triggers": [
            {"type": "prometheus", "name": "queue-depth", "metricType": "AverageValue",
             "metadata": {"serverAddress": PROMETHEUS_URL, "query": queue_depth_query(series),
                          "threshold": str(config.queue_depth_target),
                          # With minReplicas 0: any queued request keeps the pods up.
                          "activationThreshold": "0"}},
            # A value for the whole Deployment, not per replica. With no requests the
            # quantile is NaN, which KEDA reads as 0 (ignoreNullValues, its default).
            {"type": "prometheus", "name": "p95-latency", "metricType": "Value",
             "metadata": {"serverAddress": PROMETHEUS_URL, "query": p95_latency_query(series),
                          "threshold": f"{config.p95_latency_target_s:g}",
                          # With minReplicas 0: any request in the window keeps them up.
                          "activationThreshold": "0"}},
        ],
    }


def hpa_behavior() -> dict:
    """The guide's behaviour: scale up at once (double or +4 pods per 15 s), scale down after
    5 minutes of calm and by at most half per minute."""
    return {
        "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
            {"type": "Percent", "value": 100, "periodSeconds": 15},
            {"type": "Pods", "value": 4, "periodSeconds": 15}]},
        "scaleDown": {"stabilizationWindowSeconds": 300, "policies": [
            {"type": "Percent", "value": 50, "periodSeconds": 60}]},
    }
