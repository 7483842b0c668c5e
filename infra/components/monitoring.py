"""kube-prometheus-stack, KEDA (scales the serving Deployment on what Prometheus holds), alert
rules, dashboard."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from infra.components.admission import NODE_EXPORTER_NAMESPACE, pod_security_labels
from infra.components.base import k8s_child
from infra.config import Monitoring as MonitoringConfig
from infra.cost.runtime import NODE_LABELS_ALLOWLIST

KUBE_PROMETHEUS_STACK_CHART = "75.15.1"
KEDA_CHART = "2.20.2"
NAMESPACE = "monitoring"
KEDA_NAMESPACE = "keda"
ON_SYSTEM_NODES = {"aiinfra.io/pool": "system"}
# kube-prometheus-stack's Prometheus Service (release name + "-prometheus"), as KEDA reads it.
PROMETHEUS_URL = f"http://kube-prometheus-stack-prometheus.{NAMESPACE}.svc:9090"
QUEUE_DEPTH = "aiinfra_queue_depth"
# The receiver's URL or key, mounted from a Secret; Alertmanager reads it from this file.
RECEIVER_SECRET = "alert-receiver"
RECEIVER_FILE = f"/etc/alertmanager/secrets/{RECEIVER_SECRET}/url"
RECEIVER_CONFIGS = {
    "slack": lambda channel: {"slack_configs": [{"api_url_file": RECEIVER_FILE,
                                                 "channel": channel, "send_resolved": True}]},
    "webhook": lambda _: {"webhook_configs": [{"url_file": RECEIVER_FILE,
                                               "send_resolved": True}]},
    "pagerduty": lambda _: {"pagerduty_configs": [{"routing_key_file": RECEIVER_FILE,
                                                   "send_resolved": True}]},
}
REQUEST_DURATION = "aiinfra_request_duration_seconds"

ALERTS = [
    {"alert": "AiinfraLatencySLO",
     "expr": "histogram_quantile(0.95, sum by (le, model) (rate("
             'aiinfra_request_duration_seconds_bucket{outcome="success"}[5m]))) > 0.5',
     "for": "10m", "labels": {"severity": "warning"},
     "annotations": {"summary": "p95 inference latency of {{ $labels.model }} over 500 ms"}},
    {"alert": "AiinfraErrorRate",
     "expr": 'sum by (model) (rate(aiinfra_inference_requests_total{outcome="failure"}[5m]))'
             " / sum by (model) (rate(aiinfra_inference_requests_total[5m])) > 0.01",
     "for": "5m", "labels": {"severity": "critical"},
     "annotations": {"summary": "over 1% of {{ $labels.model }} requests fail"}},
    {"alert": "AiinfraQueueSaturated",
     "expr": 'sum by (model) (rate(aiinfra_rejections_total{reason="queue_full"}[5m])) > 0',
     "for": "5m", "labels": {"severity": "warning"},
     "annotations": {"summary": "{{ $labels.model }} queue is full: requests are refused"}},
    {"alert": "AiinfraModelLoadFailing",
     "expr": "sum by (model) (increase(aiinfra_model_load_failures_total[15m])) > 0",
     "labels": {"severity": "warning"},
     "annotations": {"summary": "{{ $labels.model }} failed to load: GET /v2/repository/index "
                                "or the server log says why"}},
    {"alert": "AiinfraGpuMemoryHigh",
     "expr": "DCGM_FI_DEV_FB_USED / (DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE) > 0.92",
     "for": "10m", "labels": {"severity": "warning"},
     "annotations": {"summary": "GPU {{ $labels.gpu }} on {{ $labels.Hostname }} over 92% "
                                "memory"}},
]


def dashboard() -> dict:
    """The serving dashboard: traffic, latency, batching, queue and GPU panels."""
    panels = [
        ("Requests/s by outcome",
         "sum by (model, outcome) (rate(aiinfra_inference_requests_total[1m]))"),
        ("p95 latency", "histogram_quantile(0.95, sum by (le, model) "
                        '(rate(aiinfra_request_duration_seconds_bucket{outcome="success"}[5m])))'),
        ("Queue depth", f"sum by (model) ({QUEUE_DEPTH})"),
        ("Average batch size",
         "sum by (model) (rate(aiinfra_inferences_total[5m]))"
         " / sum by (model) (rate(aiinfra_executions_total[5m]))"),
        ("Rejections/s by reason", "sum by (model, reason) (rate(aiinfra_rejections_total[5m]))"),
        ("GPU utilisation", "avg by (Hostname, gpu) (DCGM_FI_DEV_GPU_UTIL)"),
        ("GPU memory used", "DCGM_FI_DEV_FB_USED"),
    ]
    return {
        "title": "aiinfra serving", "uid": "aiinfra-serving", "schemaVersion": 39,
        "time": {"from": "now-1h", "to": "now"}, "refresh": "30s",
        "panels": [{"id": i + 1, "type": "timeseries", "title": title,
                    "gridPos": {"x": (i % 2) * 12, "y": (i // 2) * 8, "w": 12, "h": 8},
                    "targets": [{"expr": expr, "refId": "A"}]}
                   for i, (title, expr) in enumerate(panels)],
    }


@dataclass(frozen=True)
class MonitoringArgs:
    name: str
    config: MonitoringConfig
    provider: pulumi.ProviderResource
    depends_on: list[pulumi.Resource]
    pod_security_version: str  # the cluster's Kubernetes version
    # PrometheusRule spec and Grafana dashboard of the measured cost (infra.cost.runtime)
    cost_rules: dict | None = None
    cost_dashboard: dict | None = field(default=None)


class Monitoring(pulumi.ComponentResource):
    def __init__(self, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aiinfra:monitoring:Monitoring", args.name, None, opts)
        provider, config = args.provider, args.config
        version = args.pod_security_version
        namespace = k8s.core.v1.Namespace(
            f"{args.name}-namespace", metadata={"name": NAMESPACE, "labels": pod_security_labels(
                "baseline", version=version, warn="restricted")},
            opts=k8s_child(self, provider))
        # node-exporter reads the host (hostNetwork, hostPID, hostPath /): it alone needs
        # `privileged`, so it runs in its own namespace and the rest of the stack at baseline.
        node_exporter_namespace = k8s.core.v1.Namespace(
            f"{args.name}-node-exporter-namespace", metadata={
                "name": NODE_EXPORTER_NAMESPACE, "labels": pod_security_labels(
                    "privileged", version=version, warn="baseline")},
            opts=k8s_child(self, provider))
        grafana_password = random.RandomPassword(
            f"{args.name}-grafana-admin", length=32, special=False,
            opts=pulumi.ResourceOptions(parent=self))
        grafana_admin = k8s.core.v1.Secret(
            f"{args.name}-grafana-admin", metadata={"name": "grafana-admin",
                                                    "namespace": NAMESPACE},
            string_data={"admin-user": "admin",
                         "admin-password": pulumi.Output.secret(grafana_password.result)},
            opts=k8s_child(self, provider, depends_on=[namespace]))
        self.name = args.name
        alertmanager, receiver_secret = self._alertmanager(config, provider, namespace)
        self.stack = k8s.helm.v3.Release(
            f"{args.name}-kube-prometheus-stack", name="kube-prometheus-stack",
            namespace=NAMESPACE, chart="kube-prometheus-stack",
            version=KUBE_PROMETHEUS_STACK_CHART,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(
                repo="https://prometheus-community.github.io/helm-charts"),
            values={
                "prometheus": {"prometheusSpec": {
                    "retention": f"{config.retention_days}d",
                    # Stop before the volume fills (a full one crash-loops Prometheus); the
                    # size is in GB, the volume in GiB; the rest is for the WAL.
                    "retentionSize": f"{int(config.storage_gib * 2**30 * 0.85 / 1e9)}GB",
                    "serviceMonitorSelectorNilUsesHelmValues": False,
                    "ruleSelectorNilUsesHelmValues": False,
                    "nodeSelector": ON_SYSTEM_NODES,
                    "storageSpec": {"volumeClaimTemplate": {"spec": {
                        "storageClassName": "gp3", "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": f"{config.storage_gib}Gi"}}}}},
                }},
                # Generated, held as a Pulumi secret: never the chart's published default.
                "grafana": {"enabled": config.grafana,
                            "admin": {"existingSecret": grafana_admin.metadata["name"],
                                      "userKey": "admin-user",
                                      "passwordKey": "admin-password"},
                            "sidecar": {"dashboards": {"enabled": True,
                                                       "label": "grafana_dashboard"}}},
                "alertmanager": alertmanager,
                # the node labels the cost rules join on (kube_node_labels)
                "kube-state-metrics": {"metricLabelsAllowlist": [NODE_LABELS_ALLOWLIST]},
                "prometheus-node-exporter": {"namespaceOverride": NODE_EXPORTER_NAMESPACE},
            },
            opts=k8s_child(self, provider, depends_on=[namespace, node_exporter_namespace,
                                                       *args.depends_on,
                                                       *receiver_secret]))
        # KEDA: its operator turns each ScaledObject into an HPA and serves that HPA's metrics
        # (external.metrics.k8s.io) from its Prometheus triggers; the chart installs the
        # keda.sh CRDs. Its pods meet the restricted Pod Security Standard.
        keda_namespace = k8s.core.v1.Namespace(
            f"{args.name}-keda-namespace", metadata={
                "name": KEDA_NAMESPACE,
                "labels": pod_security_labels("restricted", version=version)},
            opts=k8s_child(self, provider))
        self.keda = k8s.helm.v3.Release(
            f"{args.name}-keda", name="keda", namespace=KEDA_NAMESPACE, chart="keda",
            version=KEDA_CHART,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(
                repo="https://kedacore.github.io/charts"),
            # The chart's top-level nodeSelector places the operator, the metrics API server
            # and the admission webhooks alike.
            values={"nodeSelector": ON_SYSTEM_NODES},
            opts=k8s_child(self, provider, depends_on=[keda_namespace, *args.depends_on]))
        k8s.apiextensions.CustomResource(
            f"{args.name}-serving-rules", api_version="monitoring.coreos.com/v1",
            kind="PrometheusRule",
            metadata={"name": "aiinfra-serving", "namespace": NAMESPACE,
                      "labels": {"release": "kube-prometheus-stack"}},
            spec={"groups": [{"name": "aiinfra-serving", "rules": ALERTS}]},
            opts=k8s_child(self, provider, depends_on=[self.stack]))
        k8s.core.v1.ConfigMap(
            f"{args.name}-dashboard",
            metadata={"name": "aiinfra-serving-dashboard", "namespace": NAMESPACE,
                      "labels": {"grafana_dashboard": "1"}},
            data={"aiinfra-serving.json": json.dumps(dashboard())},
            opts=k8s_child(self, provider, depends_on=[namespace]))
        if args.cost_rules is not None:
            k8s.apiextensions.CustomResource(
                f"{args.name}-cost-rules", api_version="monitoring.coreos.com/v1",
                kind="PrometheusRule",
                metadata={"name": "aiinfra-cost", "namespace": NAMESPACE,
                          "labels": {"release": "kube-prometheus-stack"}},
                spec=args.cost_rules, opts=k8s_child(self, provider, depends_on=[self.stack]))
        if args.cost_dashboard is not None:
            k8s.core.v1.ConfigMap(
                f"{args.name}-cost-dashboard",
                metadata={"name": "aiinfra-cost-dashboard", "namespace": NAMESPACE,
                          "labels": {"grafana_dashboard": "1"}},
                data={"aiinfra-cost.json": json.dumps(args.cost_dashboard)},
                opts=k8s_child(self, provider, depends_on=[namespace]))
        self.register_outputs({})

    def _alertmanager(self, config, provider, namespace) -> tuple[dict, list]:
        """Alertmanager's values: a route to the stack's receiver, whose URL Alertmanager reads
        from a mounted Secret (the Pulumi secret ``aiinfra:alertReceiverUrl``)."""
        if config.alert_receiver == "none":
            return {"enabled": True}, []
        url = pulumi.Config("aiinfra").get_secret("alertReceiverUrl")
        if url is None:
            raise ValueError(f"monitoring.alertReceiver is {config.alert_receiver}: set its URL "
                             "with `pulumi config set --secret aiinfra:alertReceiverUrl URL`")
        secret = k8s.core.v1.Secret(
            f"{self.name}-alert-receiver", metadata={"name": RECEIVER_SECRET,
                                                      "namespace": NAMESPACE},
            string_data={"url": url}, opts=k8s_child(self, provider, depends_on=[namespace]))
        receiver = {"name": "aiinfra",
                    **RECEIVER_CONFIGS[config.alert_receiver](config.alert_channel)}
        values = {
            "enabled": True,
            "alertmanagerSpec": {"secrets": [RECEIVER_SECRET]},
            "config": {
                "route": {"receiver": "aiinfra", "group_by": ["alertname", "model"],
                          "routes": [{"receiver": "null",
                                      "matchers": ['alertname = "Watchdog"']}]},
                "receivers": [{"name": "null"}, receiver],
            },
        }
        return values, [secret]
