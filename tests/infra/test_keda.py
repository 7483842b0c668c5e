"""KEDA scales the serving Deployment: its release, the ScaledObject's triggers, bounds and
behaviour per stack, what it waits for, and the config rules behind its bounds."""

from __future__ import annotations

import copy

import jsonschema
import pytest

from infra.components.autoscaling import hpa_behavior
from infra.config import ConfigError, Serving, parse_stack_config
from infra.preview import k8s_objects
from infra.render import Graph, Resource, stack_values
from tests.infra.charts import chart_dir, chart_of, crd_schema, installer, releases, waits_for
from tests.infra.test_custom_resources import strict

STACKS = ["dev", "staging", "prod"]
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
PROMETHEUS = "http://kube-prometheus-stack-prometheus.monitoring.svc:9090"
SERIES = 'namespace="aiinfra",service="aiinfra-serving"'


def scaled_object(graph: Graph) -> Resource:
    (found,) = graph.of_type(SCALED_OBJECT)
    return found


def triggers(graph: Graph) -> dict[str, dict]:
    return {t["name"]: t for t in scaled_object(graph).inputs["spec"]["triggers"]}


def keda(graph: Graph) -> Resource:
    (release,) = [r for r in releases(graph) if chart_of(r) == "keda"]
    return release


@pytest.mark.parametrize("stack", STACKS)
def test_keda_is_installed_on_the_system_nodes_in_its_own_namespace(graphs, stack: str) -> None:
    graph = graphs[stack]
    release = keda(graph)
    assert release.inputs["version"] == "2.20.2"
    assert release.inputs["repositoryOpts"]["repo"] == "https://kedacore.github.io/charts"
    assert release.inputs["namespace"] == "keda"
    # The top-level nodeSelector is the default of the operator, metrics server and webhooks.
    assert release.inputs["values"]["nodeSelector"] == {"aiinfra.io/pool": "system"}
    for component in ("operator", "metricsServer", "webhooks"):
        assert not (release.inputs["values"].get(component) or {}).get("nodeSelector")
    (namespace,) = [r for r in graph.of_type("kubernetes:core/v1:Namespace")
                    if r.inputs["metadata"]["name"] == "keda"]
    assert waits_for(graph, release, namespace)
    (system,) = [r for r in graph.of_type("aws:eks/nodeGroup:NodeGroup")
                 if r.name.endswith("-system")]
    assert waits_for(graph, release, system)
    assert release.parent == f"aiinfra-{stack}-monitoring"


@pytest.mark.parametrize("stack", STACKS)
def test_no_hpa_and_no_prometheus_adapter(graphs, stack: str) -> None:
    graph = graphs[stack]
    assert not graph.of_type("kubernetes:autoscaling/v2:HorizontalPodAutoscaler")
    assert "prometheus-adapter" not in {chart_of(r) for r in releases(graph)}
    assert not [body for body in k8s_objects(graph)
                if body["kind"] == "HorizontalPodAutoscaler"]


@pytest.mark.parametrize("stack", STACKS)
def test_the_scaled_object_targets_the_serving_deployment(graphs, stack: str) -> None:
    graph = graphs[stack]
    scaler = scaled_object(graph)
    (deployment,) = graph.of_type("kubernetes:apps/v1:Deployment")
    assert scaler.inputs["metadata"]["namespace"] == deployment.inputs["metadata"]["namespace"]
    assert scaler.inputs["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "name": deployment.inputs["metadata"]["name"]}
    assert "replicas" not in deployment.inputs["spec"]


@pytest.mark.parametrize("stack", STACKS)
def test_bounds_come_from_the_stack_config(graphs, stack: str) -> None:
    graph = graphs[stack]
    spec = scaled_object(graph).inputs["spec"]
    serving = graph.config.serving
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (serving.min_replicas,
                                                                  serving.max_replicas)
    assert "idleReplicaCount" not in spec


def test_bounds_differ_per_stack(graphs) -> None:
    bounds = {stack: (scaled_object(graphs[stack]).inputs["spec"]["minReplicaCount"],
                      scaled_object(graphs[stack]).inputs["spec"]["maxReplicaCount"])
              for stack in STACKS}
    assert bounds == {"dev": (1, 3), "staging": (2, 8), "prod": (4, 40)}


@pytest.mark.parametrize("stack", STACKS)
def test_queue_depth_per_replica_drives_scaling(graphs, stack: str) -> None:
    graph = graphs[stack]
    queue = triggers(graph)["queue-depth"]
    assert queue["type"] == "prometheus"
    # AverageValue: KEDA's HPA divides the summed queue by the replicas it has.
    assert queue["metricType"] == "AverageValue"
    metadata = queue["metadata"]
    assert metadata["serverAddress"] == PROMETHEUS
    assert metadata["query"] == f"sum(aiinfra_queue_depth{{{SERIES}}})"
    assert metadata["threshold"] == str(graph.config.serving.queue_depth_target)
    assert float(metadata["activationThreshold"]) >= 0
    assert set(metadata) <= {"serverAddress", "query", "threshold", "activationThreshold"}


def test_prod_targets_its_own_queue_depth(graphs) -> None:
    assert triggers(graphs["prod"])["queue-depth"]["metadata"]["threshold"] == "16"
    assert triggers(graphs["dev"])["queue-depth"]["metadata"]["threshold"] == "8"


@pytest.mark.parametrize("stack", STACKS)
def test_p95_latency_is_a_guardrail(graphs, stack: str) -> None:
    graph = graphs[stack]
    latency = triggers(graph)["p95-latency"]
    assert latency["type"] == "prometheus"
    # Value: the Deployment's p95 against the target, not divided by the replicas.
    assert latency["metricType"] == "Value"
    metadata = latency["metadata"]
    assert metadata["serverAddress"] == PROMETHEUS
    assert metadata["query"] == (
        "histogram_quantile(0.95, sum by (le) "
        f'(rate(aiinfra_request_duration_seconds_bucket{{{SERIES},outcome="success"}}[2m])))')
    assert float(metadata["threshold"]) == graph.config.serving.p95_latency_target_s == 0.4
    assert float(metadata["activationThreshold"]) >= 0
    # KEDA's default: the NaN of a quiet window reads 0 instead of failing the trigger.
    assert metadata.get("ignoreNullValues", "true") == "true"


def test_the_latency_target_sits_below_the_latency_alert(graphs) -> None:
    (rules,) = [r for r in graphs["prod"].of_type("kubernetes:monitoring.coreos.com/v1:"
                                                  "PrometheusRule")
                if r.inputs["metadata"]["name"] == "aiinfra-serving"]
    (slo,) = [rule for group in rules.inputs["spec"]["groups"] for rule in group["rules"]
              if rule["alert"] == "AiinfraLatencySLO"]
    alert_s = float(slo["expr"].rsplit(">", 1)[1])
    for stack in STACKS:
        assert graphs[stack].config.serving.p95_latency_target_s < alert_s


def test_the_queries_read_what_the_serving_pods_export_and_prometheus_scrapes(graphs) -> None:
    prometheus_client = pytest.importorskip("prometheus_client")
    from serving.metrics import ServingMetrics  # noqa: PLC0415 - only with the runtime's deps

    exported = {metric.name for metric in ServingMetrics(
        prometheus_client.CollectorRegistry()).registry.collect()}
    assert {"aiinfra_queue_depth", "aiinfra_request_duration_seconds"} <= exported
    # The ServiceMonitor in namespace aiinfra scrapes the Service aiinfra-serving: the labels
    # (namespace, service) the queries select on.
    objects = k8s_objects(graphs["prod"])
    (monitor,) = [o for o in objects if o["kind"] == "ServiceMonitor"
                  and o["metadata"]["namespace"] == "aiinfra"]
    (service,) = [o for o in objects if o["kind"] == "Service"
                  and o["metadata"]["namespace"] == "aiinfra"]
    assert service["metadata"]["name"] == "aiinfra-serving"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()


@pytest.mark.parametrize("stack", STACKS)
def test_behaviour_polling_and_cooldown(graphs, stack: str) -> None:
    spec = scaled_object(graphs[stack]).inputs["spec"]
    hpa = spec["advanced"]["horizontalPodAutoscalerConfig"]
    assert hpa["behavior"] == hpa_behavior()
    assert hpa["behavior"]["scaleUp"]["stabilizationWindowSeconds"] == 0
    assert hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
    assert spec["pollingInterval"] == 15  # the ServiceMonitor's scrape interval
    assert spec["cooldownPeriod"] == 300


@pytest.mark.parametrize("stack", STACKS)
def test_it_takes_over_the_hpa_an_earlier_up_made(graphs, stack: str) -> None:
    """KEDA's webhook refuses a ScaledObject for a Deployment an HPA already scales, and
    Pulumi deletes the old HPA only after creating this: it adopts that HPA by name."""
    scaler = scaled_object(graphs[stack])
    assert scaler.inputs["metadata"]["annotations"][
        "scaledobject.keda.sh/transfer-hpa-ownership"] == "true"
    assert scaler.inputs["spec"]["advanced"]["horizontalPodAutoscalerConfig"][
        "name"] == "aiinfra-serving"


@pytest.mark.parametrize("stack", STACKS)
def test_it_waits_for_keda_and_prometheus(graphs, stack: str) -> None:
    graph = graphs[stack]
    scaler = scaled_object(graph)
    assert waits_for(graph, scaler, keda(graph))
    assert installer(graph, "keda.sh") is keda(graph)
    (stack_release,) = [r for r in releases(graph) if chart_of(r) == "kube-prometheus-stack"]
    assert waits_for(graph, scaler, stack_release)


def test_the_crd_is_checked_as_the_chart_installs_it(graphs) -> None:
    """KEDA's build patches bounds onto the behaviour's stabilisation windows; the vendored
    base CRD lacks them, so the test applies the vendored patch."""
    directory = chart_dir(keda(graphs["prod"]))
    schema = crd_schema(directory, "keda.sh", "ScaledObject", "v1alpha1")
    behavior = schema["properties"]["spec"]["properties"]["advanced"]["properties"][
        "horizontalPodAutoscalerConfig"]["properties"]["behavior"]["properties"]
    for direction in ("scaleUp", "scaleDown"):
        window = behavior[direction]["properties"]["stabilizationWindowSeconds"]
        assert (window["minimum"], window["maximum"]) == (0, 3600)
    (body,) = [o for o in k8s_objects(graphs["prod"]) if o["kind"] == "ScaledObject"]
    validator = jsonschema.Draft202012Validator(strict(schema))
    assert list(validator.iter_errors(body)) == []
    too_long = copy.deepcopy(body)
    too_long["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"][
        "stabilizationWindowSeconds"] = 3601
    assert list(validator.iter_errors(too_long))
    typo = copy.deepcopy(body)
    typo["spec"]["minReplicas"] = 2  # the HPA's name for it
    assert list(validator.iter_errors(typo))


def _values(stack: str, **serving) -> dict:
    values = copy.deepcopy(stack_values(stack))
    values.setdefault("serving", {}).update(serving)
    return values


def test_prod_refuses_scale_to_zero() -> None:
    with pytest.raises(ConfigError, match="serving.minReplicas must be at least 2"):
        parse_stack_config(_values("prod", minReplicas=0), source="Pulumi.prod.yaml",
                           offline=True)


@pytest.mark.parametrize("stack", ["dev", "staging"])
def test_scale_to_zero_is_allowed_outside_prod(stack: str) -> None:
    assert parse_stack_config(_values(stack, minReplicas=0), offline=True).serving.min_replicas == 0


def test_latency_target_is_typed_and_bounded() -> None:
    assert Serving().p95_latency_target_s == 0.4
    config = parse_stack_config(_values("dev", p95LatencyTargetS=0.25))
    assert config.serving.p95_latency_target_s == 0.25
    with pytest.raises(ConfigError, match=r"aiinfra:serving.p95LatencyTargetS"):
        parse_stack_config(_values("dev", p95LatencyTargetS=0))
    with pytest.raises(ConfigError, match="minReplicas -1|serving.minReplicas"):
        parse_stack_config(_values("dev", minReplicas=-1))
