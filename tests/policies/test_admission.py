"""The cluster's ValidatingAdmissionPolicies, offline: for each policy, compliant objects are
admitted and objects changed in one field are refused with the policy's message, the verdict
the API server reaches under the admissionregistration.k8s.io/v1 semantics (binding selects
namespaces, matchConditions exclude, an evaluation error refuses under failurePolicy Fail)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from infra.components.admission import (
    AdmissionPolicy,
    admission_policies,
    autoscaler_bounds,
    pod_security_labels,
)
from infra.render import Graph
from policies.core import Stack, Subject
from policies.kubernetes._admission import (
    NAME_LABEL,
    admit,
    matches,
    refusals,
    resource_of,
    selector_matches,
)
from policies.offline import stack_view
from tests.policies.fixtures import DELETE, deployment, hpa, mutate, scaled_object

PROD = {policy.name: policy for policy in admission_policies(production=True)}
DEV = {policy.name: policy for policy in admission_policies(production=False)}
POD = "spec.template.spec"
SERVER = f"{POD}.containers.0"
NAMESPACES = {"aiinfra": {**pod_security_labels("restricted", version="1.35"),
                          NAME_LABEL: "aiinfra"}}


def pod(namespace: str = "batch", **spec: Any) -> dict:
    """A CPU pod: what lands on system nodes, with requests, limits and probes."""
    container = {"name": "app", "image": "registry.example.com/app:1.0@sha256:" + "cd" * 32,
                 "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                               "limits": {"cpu": "1", "memory": "128Mi"}},
                 "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}},
                 "livenessProbe": {"httpGet": {"path": "/live", "port": 8080}}}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "app", "namespace": namespace},
            "spec": {"containers": [container], **spec}}


def dcgm_daemon_set(namespace: str = "gpu-operator") -> dict:
    """What DCGM exporter's chart renders, in essence: SYS_ADMIN, every GPU, no GPU request,
    tolerating the GPU taint to run on every GPU node."""
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "dcgm-exporter", "namespace": namespace},
            "spec": {"selector": {"matchLabels": {"app": "dcgm-exporter"}}, "template": {
                "metadata": {"labels": {"app": "dcgm-exporter"}},
                "spec": {
                    "nodeSelector": {"nvidia.com/gpu.present": "true"},
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists",
                                     "effect": "NoSchedule"}],
                    "containers": [{
                        "name": "exporter", "image": "nvcr.io/nvidia/k8s/dcgm-exporter:4.2.3",
                        "env": [{"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"}],
                        "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}},
                        "volumeMounts": [{"name": "pod-resources",
                                          "mountPath": "/var/lib/kubelet/pod-resources"}]}],
                    "volumes": [{"name": "pod-resources", "hostPath": {
                        "path": "/var/lib/kubelet/pod-resources"}}]}}}}


def verdict(policy: AdmissionPolicy, body: dict) -> list[str] | None:
    """None: the binding does not select it; else the refusals' messages ([] admits)."""
    if not matches(policy.policy(), policy.binding(), body, NAMESPACES):
        return None
    return [r.message for r in refusals(policy.policy(), body)]


def message(policy: str, index: int, policies: dict[str, AdmissionPolicy] = PROD) -> str:
    return policies[policy].validations[index]["message"]


def change(body: dict, path: str, value: Any) -> dict:
    return mutate(body, path, value)


GPU_ACCESS, PRIVILEGED, GPU_NODES = ("aiinfra-gpu-access", "aiinfra-privileged-containers",
                                     "aiinfra-gpu-nodes")
RESOURCES, PROBES, DIGESTS, BOUNDS = ("aiinfra-workload-resources", "aiinfra-workload-probes",
                                      "aiinfra-image-digests", "aiinfra-autoscaler-bounds")
CPU_ONLY = {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}

# (case, policy, object, expected: None = not selected, [] = admitted, else refused with)
CASES = [
    # Compliant objects: the serving Deployment, a CPU pod, KEDA and HPA scalers.
    *[(f"serving-deployment-{name}", name, deployment(), []) for name in PROD
      if name != BOUNDS],
    ("cpu-pod-gpu-access", GPU_ACCESS, pod(), []),
    ("cpu-pod-privileged", PRIVILEGED, pod(), []),
    ("cpu-pod-gpu-nodes", GPU_NODES, pod(), []),
    ("cpu-pod-outside-serving-resources", RESOURCES, pod(), None),
    ("scaled-object-bounds", BOUNDS, scaled_object(), []),
    ("hpa-bounds", BOUNDS, hpa(), []),
    ("scaled-object-not-a-workload", RESOURCES, scaled_object(), None),
    # GPU access without a GPU request (item 3).
    ("visible-devices-without-gpu", GPU_ACCESS, change(
        pod(), "spec.containers.0.env", [{"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"}]),
     [message(GPU_ACCESS, 0)]),
    ("visible-devices-from-a-config-map", GPU_ACCESS, change(
        pod(), "spec.containers.0.env", [{"name": "NVIDIA_VISIBLE_DEVICES", "valueFrom": {
            "configMapKeyRef": {"name": "gpus", "key": "devices"}}}]),
     [message(GPU_ACCESS, 0)]),
    ("visible-devices-void-is-no-gpu", GPU_ACCESS, change(
        pod(), "spec.containers.0.env", [{"name": "NVIDIA_VISIBLE_DEVICES", "value": "void"}]),
     []),
    ("visible-devices-with-gpu-limit", GPU_ACCESS, change(
        deployment(), f"{SERVER}.env", [{"name": "NVIDIA_VISIBLE_DEVICES", "value": "0"}]), []),
    ("device-path-without-gpu", GPU_ACCESS, change(
        pod(), "spec.volumes", [{"name": "dev", "hostPath": {"path": "/dev/nvidia0"}}]),
     [message(GPU_ACCESS, 1)]),
    ("all-of-dev-without-gpu", GPU_ACCESS, change(
        pod(), "spec.volumes", [{"name": "dev", "hostPath": {"path": "/dev"}}]),
     [message(GPU_ACCESS, 1)]),
    ("other-host-path-is-psa-business", GPU_ACCESS, change(
        pod(), "spec.volumes", [{"name": "d", "hostPath": {"path": "/devices-cache"}}]), []),
    ("dcgm-in-its-namespace", GPU_ACCESS, dcgm_daemon_set(), None),
    ("dcgm-elsewhere-gpu-access", GPU_ACCESS, dcgm_daemon_set("monitoring"),
     [message(GPU_ACCESS, 0)]),
    # SYS_ADMIN and privileged only in the GPU DaemonSets' namespace.
    ("dcgm-in-its-namespace-privileged", PRIVILEGED, dcgm_daemon_set(), None),
    ("dcgm-elsewhere-privileged", PRIVILEGED, dcgm_daemon_set("monitoring"),
     [message(PRIVILEGED, 1)]),
    ("privileged-container", PRIVILEGED, change(
        pod(), "spec.containers.0.securityContext", {"privileged": True}),
     [message(PRIVILEGED, 0)]),
    ("privileged-false-is-fine", PRIVILEGED, change(
        pod(), "spec.containers.0.securityContext", {"privileged": False}), []),
    ("add-all-capabilities", PRIVILEGED, change(
        pod(), "spec.containers.0.securityContext", {"capabilities": {"add": ["ALL"]}}),
     [message(PRIVILEGED, 1)]),
    ("privileged-init-container-in-a-deployment", PRIVILEGED, change(
        deployment(), f"{POD}.initContainers.0.securityContext.privileged", True),
     [message(PRIVILEGED, 0)]),
    ("net-bind-is-not-sys-admin", PRIVILEGED, change(
        pod(), "spec.containers.0.securityContext", {"capabilities": {
            "add": ["NET_BIND_SERVICE"]}}), []),
    # GPU pods tolerate the GPU taint; nothing else schedules there.
    ("gpu-pod-without-toleration", GPU_NODES, change(deployment(), f"{POD}.tolerations",
                                                     DELETE), [message(GPU_NODES, 0)]),
    ("gpu-pod-tolerating-another-taint", GPU_NODES, change(
        deployment(), f"{POD}.tolerations", [{"key": "dedicated", "operator": "Exists"}]),
     [message(GPU_NODES, 0)]),
    ("gpu-pod-tolerating-everything", GPU_NODES, change(
        deployment(), f"{POD}.tolerations", [{"operator": "Exists"}]), []),
    ("gpu-toleration-by-value", GPU_NODES, change(
        deployment(), f"{POD}.tolerations", [{"key": "nvidia.com/gpu", "value": "true",
                                              "effect": "NoSchedule"}]), []),
    ("gpu-toleration-for-no-execute-only", GPU_NODES, change(
        deployment(), f"{POD}.tolerations", [{"key": "nvidia.com/gpu", "operator": "Exists",
                                              "effect": "NoExecute"}]),
     [message(GPU_NODES, 0)]),
    ("cpu-pod-tolerating-the-gpu-taint", GPU_NODES, change(
        pod(), "spec.tolerations", [{"key": "nvidia.com/gpu", "operator": "Exists"}]),
     [message(GPU_NODES, 1)]),
    ("cpu-pod-tolerating-everything", GPU_NODES, change(
        pod(), "spec.tolerations", [{"operator": "Exists"}]), [message(GPU_NODES, 1)]),
    ("cpu-deployment-selecting-gpu-nodes", GPU_NODES, change(
        change(deployment(), f"{SERVER}.resources", CPU_ONLY), f"{POD}.tolerations", DELETE),
     [message(GPU_NODES, 2)]),
    ("cpu-deployment-on-gpu-nodes", GPU_NODES, change(deployment(), f"{SERVER}.resources",
                                                      CPU_ONLY),
     [message(GPU_NODES, 1), message(GPU_NODES, 2)]),
    ("node-agent-tolerating-everything", GPU_NODES, change(
        pod("node-exporter"), "spec.tolerations", [{"operator": "Exists"}]), None),
    # Requests and limits, probes, digests in the serving namespace.
    ("no-memory-limit", RESOURCES, change(deployment(), f"{SERVER}.resources.limits", {
        "cpu": "4", "nvidia.com/gpu": "1"}), [message(RESOURCES, 0)]),
    ("init-container-without-resources", RESOURCES, change(
        deployment(), f"{POD}.initContainers.0.resources", DELETE), [message(RESOURCES, 0)]),
    ("gpu-request-without-limit", RESOURCES, change(
        deployment(), f"{SERVER}.resources.limits", {"cpu": "4", "memory": "12Gi"}),
     [message(RESOURCES, 1)]),
    ("no-liveness-probe", PROBES, change(deployment(), f"{SERVER}.livenessProbe", DELETE),
     [message(PROBES, 0)]),
    # (The serving Deployment's init container has no probes, and is admitted above.)
    ("a-jobs-pod-needs-no-probes", PROBES, change(change(
        pod("aiinfra"), "spec.containers.0.readinessProbe", DELETE), "metadata.ownerReferences",
        [{"apiVersion": "batch/v1", "kind": "Job", "name": "sync", "uid": "1"}]), []),
    ("a-bare-pod-needs-probes", PROBES, change(pod("aiinfra"), "spec.containers.0.readinessProbe",
                                               DELETE), [message(PROBES, 0)]),
    ("image-by-tag", DIGESTS, change(deployment(), f"{SERVER}.image",
                                     "123456789012.dkr.ecr.us-east-1.amazonaws.com/serving:0.1"),
     [message(DIGESTS, 0)]),
    ("short-digest", DIGESTS, change(deployment(), f"{SERVER}.image", "serving@sha256:abc"),
     [message(DIGESTS, 0)]),
    # An evaluation error refuses (failurePolicy Fail): a container without an image.
    ("container-without-image", DIGESTS, change(deployment(), f"{SERVER}.image", DELETE),
     [f"{message(DIGESTS, 0)} (expression error: no such member in mapping: 'image')"]),
    # Autoscaler bounds (prod floor 2).
    ("keda-min-one", BOUNDS, change(scaled_object(), "spec.minReplicaCount", 1),
     [message(BOUNDS, 1)]),
    ("keda-scale-to-zero-by-default", BOUNDS, change(scaled_object(), "spec.minReplicaCount",
                                                     DELETE), [message(BOUNDS, 1)]),
    ("keda-idle-zero", BOUNDS, change(scaled_object(), "spec.idleReplicaCount", 0),
     [message(BOUNDS, 2)]),
    ("keda-max-below-min", BOUNDS, change(scaled_object(), "spec.maxReplicaCount", 1),
     [message(BOUNDS, 0)]),
    ("hpa-default-min-one", BOUNDS, change(hpa(), "spec.minReplicas", DELETE),
     [message(BOUNDS, 1)]),
    ("hpa-elsewhere", BOUNDS, change(change(hpa(), "spec.minReplicas", 1), "metadata.namespace",
                                     "batch"), None),
]


@pytest.mark.parametrize(("policy", "body", "expected"), [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_offline_verdict_is_the_expected_admission_verdict(policy: str, body: dict,
                                                           expected: list[str] | None) -> None:
    assert verdict(PROD[policy], body) == expected


def test_every_validation_of_every_policy_refuses_some_case() -> None:
    refused = {(policy, text) for _, policy, _, expected in CASES for text in expected or ()}
    for name, policy in PROD.items():
        for validation in policy.validations:
            assert any(p == name and text.startswith(validation["message"])
                       for p, text in refused), (name, validation["message"])


def test_a_pod_is_judged_like_the_workload_that_makes_it() -> None:
    template = deployment()["spec"]["template"]
    body = {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "serving-abc", "namespace": "aiinfra",
                         "labels": template["metadata"]["labels"]},
            "spec": copy.deepcopy(template["spec"])}
    assert all(verdict(policy, body) == [] for name, policy in PROD.items() if name != BOUNDS)
    del body["spec"]["tolerations"]
    assert verdict(PROD[GPU_NODES], body) == [message(GPU_NODES, 0)]


def test_a_cron_jobs_pod_template_is_read_through_its_job_template() -> None:
    container = pod()["spec"]["containers"][0]
    body = {"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "report", "namespace": "batch"},
            "spec": {"schedule": "0 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{**container, "securityContext": {"privileged": True}}]}}}}}}
    assert verdict(PROD[PRIVILEGED], body) == [message(PRIVILEGED, 0)]


def test_dev_has_no_digest_policy_and_a_floor_of_one() -> None:
    assert DIGESTS not in DEV
    assert verdict(DEV[BOUNDS], change(scaled_object(), "spec.minReplicaCount", 0)) == []
    assert verdict(DEV[BOUNDS], change(scaled_object(), "spec.maxReplicaCount", 0)) == [
        message(BOUNDS, 0, DEV)]
    assert len(autoscaler_bounds(1).validations) == 1


def test_label_selectors_and_resource_names_follow_the_api() -> None:
    labels = {NAME_LABEL: "aiinfra", "team": "ml"}
    assert selector_matches(None, labels)
    assert selector_matches({"matchLabels": {"team": "ml"}}, labels)
    assert not selector_matches({"matchLabels": {"team": "web"}}, labels)
    assert selector_matches({"matchExpressions": [
        {"key": "team", "operator": "Exists"},
        {"key": "tier", "operator": "DoesNotExist"},
        {"key": NAME_LABEL, "operator": "NotIn", "values": ["kube-system"]}]}, labels)
    assert not selector_matches({"matchExpressions": [
        {"key": "team", "operator": "Gt", "values": ["1"]}]}, labels)
    assert [resource_of(kind) for kind in ("Deployment", "HorizontalPodAutoscaler",
                                           "ScaledObject", "CronJob")] == [
        "deployments", "horizontalpodautoscalers", "scaledobjects", "cronjobs"]


def _with(graph: Graph, name: str, path: str, value: Any) -> Stack:
    """The rendered stack with one field of one resource changed."""
    stack = stack_view(graph)
    resources = tuple(
        Subject(s.type, s.name, mutate(dict(s.props), path, value), urn=s.urn, parent=s.parent)
        if s.name == name else s for s in stack.resources)
    return Stack(resources)


def test_the_rendered_prod_stack_is_admitted_and_a_changed_deployment_is_not(
        stack_graphs: dict[str, Graph]) -> None:
    graph = stack_graphs["prod"]
    assert admit(stack_view(graph)) == []
    changed = _with(graph, "aiinfra-prod-serving-deployment",
                    "spec.template.spec.containers.0.resources.limits", {"cpu": "4"})
    # No memory limit, and the GPU requested is no longer limited.
    assert [(s.name, r.policy, r.message) for s, r in admit(changed)] == [
        ("aiinfra-prod-serving-deployment", RESOURCES, message(RESOURCES, 0)),
        ("aiinfra-prod-serving-deployment", RESOURCES, message(RESOURCES, 1))]


def test_a_binding_that_only_warns_is_reported_as_not_enforced(
        stack_graphs: dict[str, Graph]) -> None:
    from policies.registry import rule_named  # noqa: PLC0415
    from tests.policies.fixtures import context  # noqa: PLC0415

    graph = stack_graphs["prod"]
    stack = _with(graph, "aiinfra-prod-admission-aiinfra-gpu-nodes",
                  "spec.validationActions", ["Warn", "Audit"])
    binding = next(s for s in stack.resources if s.name.endswith("aiinfra-gpu-nodes")
                   and s.type.endswith("Binding"))
    assert binding.props["spec"]["validationActions"] == ["Warn", "Audit"]
    rule = rule_named("kubernetes-object-require-cluster-admission")
    assert [f.message for f in rule.findings(stack, context())] == [
        "ValidatingAdmissionPolicy aiinfra-gpu-nodes has no binding with validationActions "
        "Deny: the cluster does not enforce it"]
