"""The serving pods' two protocols: HTTP on 8000 and the Open Inference Protocol's gRPC
service on 8001, from the container through the Service to the NetworkPolicy, while probes and
/metrics stay on HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.components.monitoring import NAMESPACE as MONITORING_NAMESPACE
from infra.components.serving import GRPC_PORT, PORT
from infra.preview import k8s_objects

STACKS = ["dev", "staging", "prod"]
ROOT = Path(__file__).resolve().parents[2]
CLIENTS = {"aiinfra.io/clients": "true"}


def _serving(graph, kind: str) -> dict:
    (body,) = [o for o in k8s_objects(graph)
               if o["kind"] == kind and o["metadata"].get("namespace") == "aiinfra"]
    return body


def _server(graph) -> dict:
    pod = _serving(graph, "Deployment")["spec"]["template"]["spec"]
    (server,) = pod["containers"]
    return server


def _admitted(policy: dict, namespace_labels: dict[str, str], *, same_namespace: bool) -> set:
    """The (port, protocol) pairs a NetworkPolicy's ingress rules open to a pod in a namespace
    with these labels (a peer with only a podSelector matches pods of the policy's namespace)."""
    def matches(peer: dict) -> bool:
        if "namespaceSelector" in peer:
            wanted = peer["namespaceSelector"].get("matchLabels", {})
            return wanted.items() <= namespace_labels.items()
        return "podSelector" in peer and same_namespace and peer["podSelector"] == {}

    return {(port["port"], port.get("protocol", "TCP"))
            for rule in policy["spec"]["ingress"] if any(map(matches, rule["from"]))
            for port in rule["ports"]}


def test_the_ports_are_the_runtimes_defaults() -> None:
    assert (PORT, GRPC_PORT) == (8000, 8001)


@pytest.mark.parametrize("stack", STACKS)
def test_the_server_declares_both_ports_and_is_told_the_grpc_one(graphs, stack: str) -> None:
    server = _server(graphs[stack])
    assert server["ports"] == [{"name": "http", "containerPort": 8000},
                               {"name": "grpc", "containerPort": 8001}]
    env = {e["name"]: e.get("value") for e in server["env"]}
    assert env["AIINFRA_PORT"] == "8000"
    assert env["AIINFRA_GRPC_PORT"] == "8001"
    assert "AIINFRA_GRPC" not in env  # on by default; nothing turns it off


@pytest.mark.parametrize("stack", STACKS)
def test_the_service_exposes_grpc_with_its_app_protocol(graphs, stack: str) -> None:
    service = _serving(graphs[stack], "Service")
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8000, "targetPort": "http"},
        {"name": "grpc", "port": 8001, "targetPort": "grpc", "appProtocol": "grpc"}]
    declared = {p["name"] for p in _server(graphs[stack])["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= declared


@pytest.mark.parametrize("stack", STACKS)
def test_probes_and_metrics_stay_on_http(graphs, stack: str) -> None:
    server = _server(graphs[stack])
    probes = {name: server[name] for name in ("startupProbe", "readinessProbe", "livenessProbe")}
    assert {name: probe["httpGet"] for name, probe in probes.items()} == {
        "startupProbe": {"path": "/v2/health/ready", "port": "http"},
        "readinessProbe": {"path": "/v2/health/ready", "port": "http"},
        "livenessProbe": {"path": "/v2/health/live", "port": "http"}}
    assert not any("grpc" in probe for probe in probes.values())
    monitor = _serving(graphs[stack], "ServiceMonitor")
    assert [(e["port"], e["path"]) for e in monitor["spec"]["endpoints"]] == [
        ("http", "/metrics")]


@pytest.mark.parametrize("stack", STACKS)
def test_clients_reach_both_ports_and_monitoring_only_http(graphs, stack: str) -> None:
    policy = _serving(graphs[stack], "NetworkPolicy")
    both = {(8000, "TCP"), (8001, "TCP")}
    assert _admitted(policy, CLIENTS, same_namespace=False) == both
    assert _admitted(policy, {"kubernetes.io/metadata.name": "aiinfra"},
                     same_namespace=True) == both
    assert _admitted(policy, {"kubernetes.io/metadata.name": MONITORING_NAMESPACE},
                     same_namespace=False) == {(8000, "TCP")}
    assert _admitted(policy, {"kubernetes.io/metadata.name": "default"},
                     same_namespace=False) == set()
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.cpu"])
def test_the_images_expose_the_ports_the_deployment_declares(graphs, dockerfile: str) -> None:
    lines = (ROOT / "image" / dockerfile).read_text().splitlines()
    exposed = {int(port.split("/")[0]) for line in lines if line.startswith("EXPOSE ")
               for port in line.split()[1:]}
    declared = {p["containerPort"] for p in _server(graphs["prod"])["ports"]}
    assert exposed == declared
