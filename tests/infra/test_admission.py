"""The rendered graph carries the in-cluster admission: Pod Security labels on every namespace
the program creates, and the ValidatingAdmissionPolicies with their Deny bindings, valid
against the Kubernetes 1.35 schemas and in place before the serving workload."""

from __future__ import annotations

import kubernetes_validate
import pytest

from infra.components.admission import admission_policies
from infra.preview import k8s_objects
from infra.render import Graph

POLICY = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy"
BINDING = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicyBinding"
PSA = "pod-security.kubernetes.io/"
EXPECTED_LEVELS = {  # namespace: (enforce, warn and audit)
    "aiinfra": ("restricted", "restricted"),
    "keda": ("restricted", "restricted"),
    "monitoring": ("baseline", "restricted"),
    "gpu-operator": ("privileged", "baseline"),
    "node-exporter": ("privileged", "baseline"),
}


def _namespaces(graph: Graph) -> dict[str, dict]:
    return {r.inputs["metadata"]["name"]: r.inputs["metadata"].get("labels", {})
            for r in graph.of_type("kubernetes:core/v1:Namespace")}


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_namespace_carries_pod_security_labels_pinned_to_the_cluster(
        graphs: dict[str, Graph], stack: str) -> None:
    graph = graphs[stack]
    version = f"v{graph.config.cluster_version}"
    namespaces = _namespaces(graph)
    assert set(namespaces) == set(EXPECTED_LEVELS)
    for name, (enforce, warn) in EXPECTED_LEVELS.items():
        labels = namespaces[name]
        assert {key: labels[key] for key in labels if key.startswith(PSA)} == {
            f"{PSA}enforce": enforce, f"{PSA}warn": warn, f"{PSA}audit": warn,
            f"{PSA}enforce-version": version, f"{PSA}warn-version": version,
            f"{PSA}audit-version": version}, name


def test_node_exporter_runs_in_its_own_privileged_namespace(graphs: dict[str, Graph]) -> None:
    graph = graphs["prod"]
    release = graph.named("aiinfra-prod-monitoring-kube-prometheus-stack")
    assert release.inputs["values"]["prometheus-node-exporter"] == {
        "namespaceOverride": "node-exporter"}
    waited = {r.name for r in graph.waits_for(release)}
    assert "aiinfra-prod-monitoring-node-exporter-namespace" in waited


@pytest.mark.parametrize(("stack", "count"), [("dev", 6), ("prod", 7)])
def test_the_admission_policies_are_rendered_and_bound_with_deny(
        graphs: dict[str, Graph], stack: str, count: int) -> None:
    graph = graphs[stack]
    policies = {r.inputs["metadata"]["name"]: r.inputs for r in graph.of_type(POLICY)}
    bindings = {r.inputs["spec"]["policyName"]: r.inputs for r in graph.of_type(BINDING)}
    expected = admission_policies(production=stack == "prod")
    assert len(policies) == count
    assert set(policies) == set(bindings) == {p.name for p in expected}
    for spec in expected:
        assert policies[spec.name]["spec"] == spec.policy()["spec"]
        assert policies[spec.name]["spec"]["failurePolicy"] == "Fail"
        assert bindings[spec.name]["spec"]["validationActions"] == ["Deny"]
    assert ("aiinfra-image-digests" in policies) == (stack == "prod")


def test_the_admission_objects_pass_the_clusters_schemas(graphs: dict[str, Graph]) -> None:
    graph = graphs["prod"]
    objects = [body for body in k8s_objects(graph)
               if body["apiVersion"] == "admissionregistration.k8s.io/v1"]
    assert len(objects) == 14
    for body in objects:
        kubernetes_validate.validate(body, f"{graph.config.cluster_version}.0", strict=True)


def test_the_serving_workload_waits_for_the_admission_policies(graphs: dict[str, Graph]) -> None:
    graph = graphs["prod"]
    waited = {r.type for r in graph.waits_for(graph.named("aiinfra-prod-serving-deployment"))}
    assert {POLICY, BINDING} <= waited
