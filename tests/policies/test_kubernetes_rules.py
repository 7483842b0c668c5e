"""Kubernetes rules: each compliant fixture passes; one changed field fails with the exact
message."""

from __future__ import annotations

import pytest

from infra.components.admission import pod_security_labels
from policies.core import NotApplicable, Stack
from policies.registry import rule_named
from tests.policies.cases import messages, mutated_messages
from tests.policies.fixtures import (
    DELETE,
    DEPLOYMENT,
    HPA,
    NAMESPACE,
    PDB,
    SCALED_OBJECT,
    compliant_stack,
    context,
    deployment,
    hpa,
    mutate,
    pdb,
    scaled_object,
    subject,
)
from tests.policies.fixtures import (
    namespace as namespace_props,
)

POD = "spec.template.spec"
SERVER = f"{POD}.containers.0"
INIT = f"{POD}.initContainers.0"
WORKLOAD = "Deployment aiinfra/aiinfra-serving"
SERVER_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/serving:0.1.0"

# (rule, resource type, field, new value, environment, findings)
CASES = [
    ("kubernetes-workload-require-run-as-non-root", DEPLOYMENT,
     f"{SERVER}.securityContext.runAsNonRoot", False, "prod",
     [f"{WORKLOAD}: container 'server' may run as root (runAsNonRoot is not true)"]),
    ("kubernetes-workload-require-run-as-non-root", DEPLOYMENT,
     f"{INIT}.securityContext.runAsUser", 0, "dev",
     [f"{WORKLOAD}: init container 'fetch-models' runs as uid 0 (runAsUser: 0)"]),
    ("kubernetes-workload-enable-read-only-root-filesystem", DEPLOYMENT,
     f"{SERVER}.securityContext.readOnlyRootFilesystem", False, "prod",
     [f"{WORKLOAD}: container 'server' has a writable root filesystem "
      "(readOnlyRootFilesystem is not true)"]),
    ("kubernetes-workload-disallow-privilege-escalation", DEPLOYMENT,
     f"{INIT}.securityContext.allowPrivilegeEscalation", DELETE, "prod",
     [f"{WORKLOAD}: init container 'fetch-models' allows privilege escalation "
      "(allowPrivilegeEscalation is not false)"]),
    ("kubernetes-workload-disallow-privilege-escalation", DEPLOYMENT,
     f"{SERVER}.securityContext.privileged", True, "prod",
     [f"{WORKLOAD}: container 'server' runs privileged (privileged: true)"]),
    ("kubernetes-workload-drop-all-capabilities", DEPLOYMENT,
     f"{SERVER}.securityContext.capabilities.drop", ["NET_RAW"], "prod",
     [f"{WORKLOAD}: container 'server' keeps the runtime's default capabilities "
      "(capabilities.drop lacks ALL)"]),
    ("kubernetes-workload-drop-all-capabilities", DEPLOYMENT,
     f"{SERVER}.securityContext.capabilities.add", ["SYS_ADMIN"], "prod",
     [f"{WORKLOAD}: container 'server' adds capabilities SYS_ADMIN"]),
    ("kubernetes-workload-require-resource-requests-and-limits", DEPLOYMENT,
     f"{INIT}.resources.limits", {"memory": "512Mi"}, "prod",
     [f"{WORKLOAD}: init container 'fetch-models' has no limits.cpu"]),
    ("kubernetes-workload-require-gpu-limits", DEPLOYMENT,
     f"{SERVER}.resources.limits", {"cpu": "4", "memory": "12Gi"}, "prod",
     [f"{WORKLOAD}: container 'server' requests 1 nvidia.com/gpu but its limit is unset"]),
    ("kubernetes-workload-require-gpu-limits", DEPLOYMENT,
     f"{SERVER}.resources", {"requests": {"cpu": "2", "memory": "8Gi"},
                             "limits": {"cpu": "4", "memory": "12Gi"}}, "prod",
     [f"{WORKLOAD}: runs on GPU nodes (nodeSelector nvidia.com/gpu.present) but no container "
      "limits nvidia.com/gpu"]),
    ("kubernetes-workload-require-health-probes", DEPLOYMENT,
     f"{SERVER}.readinessProbe", DELETE, "prod",
     [f"{WORKLOAD}: container 'server' has no readinessProbe"]),
    ("kubernetes-workload-disallow-latest-image-tag", DEPLOYMENT,
     f"{SERVER}.image", "ghcr.io/example/server:latest", "prod",
     [f"{WORKLOAD}: container 'server' image 'ghcr.io/example/server:latest' uses the latest "
      "tag"]),
    ("kubernetes-workload-disallow-latest-image-tag", DEPLOYMENT,
     f"{INIT}.image", "localhost:5000/aws-cli", "dev",
     [f"{WORKLOAD}: init container 'fetch-models' image 'localhost:5000/aws-cli' has no tag"]),
    ("kubernetes-workload-pin-images-by-digest", DEPLOYMENT,
     f"{SERVER}.image", SERVER_IMAGE, "prod",
     [f"{WORKLOAD}: container 'server' image '{SERVER_IMAGE}' is not pinned by digest"]),
    ("kubernetes-workload-tolerate-gpu-taint", DEPLOYMENT, f"{POD}.tolerations", [], "prod",
     [f"{WORKLOAD}: requests nvidia.com/gpu but does not tolerate the "
      "nvidia.com/gpu:NoSchedule taint"]),
    ("kubernetes-workload-disallow-host-namespaces", DEPLOYMENT, f"{POD}.hostNetwork", True,
     "prod", [f"{WORKLOAD}: shares the node's namespaces (hostNetwork)"]),
    ("kubernetes-workload-require-seccomp-profile", DEPLOYMENT,
     f"{SERVER}.securityContext.seccompProfile.type", "Unconfined", "prod",
     [f"{WORKLOAD}: container 'server' runs without a seccomp profile (seccompProfile.type is "
      "Unconfined)"]),
    ("kubernetes-apps-v1-deployment-require-pod-disruption-budget", PDB,
     "spec.selector.matchLabels", {"app.kubernetes.io/name": "other"}, "prod",
     [f"{WORKLOAD} runs up to 8 replicas but no PodDisruptionBudget in its namespace selects "
      "its pods"]),
    ("kubernetes-apps-v1-deployment-require-autoscaler", SCALED_OBJECT,
     "spec.scaleTargetRef.name", "other", "staging",
     [f"{WORKLOAD} serves on nvidia.com/gpu but no autoscaler (KEDA ScaledObject or "
      "HorizontalPodAutoscaler) targets it"]),
    ("kubernetes-autoscaler-configure-min-replicas", SCALED_OBJECT,
     "spec.minReplicaCount", 1, "prod",
     ["ScaledObject aiinfra/aiinfra-serving has minReplicaCount 1, below 2"]),
    ("kubernetes-autoscaler-configure-min-replicas", SCALED_OBJECT,
     "spec.minReplicaCount", DELETE, "prod",  # KEDA's default: scale to zero
     ["ScaledObject aiinfra/aiinfra-serving has minReplicaCount 0, below 2"]),
    ("kubernetes-autoscaler-configure-min-replicas", SCALED_OBJECT,
     "spec.idleReplicaCount", 0, "prod",
     ["ScaledObject aiinfra/aiinfra-serving has idleReplicaCount 0, below 2 (KEDA scales to "
      "it while no trigger is active)"]),
    ("kubernetes-core-v1-namespace-require-pod-security-labels", NAMESPACE, "metadata.labels",
     {"app.kubernetes.io/name": "aiinfra-serving"}, "prod",
     ["Namespace aiinfra has no pod-security.kubernetes.io/enforce label of privileged, "
      "baseline, restricted"]),
    ("kubernetes-core-v1-namespace-require-pod-security-labels", NAMESPACE, "metadata.labels",
     pod_security_labels("baseline", version="1.35"), "prod",
     ["Namespace aiinfra enforces baseline, not restricted"]),
    ("kubernetes-core-v1-namespace-require-pod-security-labels", NAMESPACE, "metadata.labels",
     {"pod-security.kubernetes.io/enforce": "restricted"}, "dev",
     ["Namespace aiinfra does not pin pod-security.kubernetes.io/enforce-version (the "
      "standard would change with the control plane)"]),
    ("kubernetes-core-v1-namespace-require-pod-security-labels", NAMESPACE, "metadata.name",
     "batch", "prod", []),  # restricted is fine anywhere
    ("kubernetes-object-require-cluster-admission", DEPLOYMENT, f"{POD}.tolerations", [],
     "prod",
     [f"{WORKLOAD}: refused by ValidatingAdmissionPolicy aiinfra-gpu-nodes: the pod requests "
      "nvidia.com/gpu but does not tolerate the nvidia.com/gpu:NoSchedule taint"]),
    ("kubernetes-object-require-cluster-admission", DEPLOYMENT, "metadata.namespace",
     "kube-system", "prod", []),  # node agents' namespace: the binding leaves it out
]


def test_privileged_is_allowed_only_in_the_node_agent_namespaces_and_audited_there() -> None:
    rule = rule_named("kubernetes-core-v1-namespace-require-pod-security-labels")
    privileged = pod_security_labels("privileged", version="1.35", warn="baseline")
    gpu = mutate(mutate(namespace_props(), "metadata.name", "gpu-operator"), "metadata.labels",
                 privileged)
    assert messages(rule, NAMESPACE, gpu) == []
    unaudited = mutate(gpu, "metadata.labels", pod_security_labels("privileged",
                                                                   version="1.35"))
    assert messages(rule, NAMESPACE, unaudited) == [
        rule.message("Namespace gpu-operator enforces privileged without "
                     f"pod-security.kubernetes.io/{mode} at baseline or restricted")
        for mode in ("warn", "audit")]
    elsewhere = mutate(gpu, "metadata.name", "batch")
    assert messages(rule, NAMESPACE, elsewhere) == [rule.message(
        "Namespace batch enforces privileged; only gpu-operator, node-exporter may")]


def test_the_message_says_what_why_and_how() -> None:
    got, _ = mutated_messages("kubernetes-workload-require-run-as-non-root", DEPLOYMENT,
                              f"{SERVER}.securityContext.runAsNonRoot", False, "prod")
    assert got == [
        "Deployment aiinfra/aiinfra-serving: container 'server' may run as root (runAsNonRoot "
        "is not true). A root process that escapes its container starts with root on the "
        "node. Set securityContext.runAsNonRoot: true and a non-zero runAsUser on the pod or "
        "the container."]


def test_pod_level_security_context_covers_containers_that_set_none() -> None:
    props = mutate(deployment(), f"{SERVER}.securityContext", {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]}})
    rule = rule_named("kubernetes-workload-require-run-as-non-root")
    assert messages(rule, DEPLOYMENT, props) == []
    assert messages(rule_named("kubernetes-workload-require-seccomp-profile"), DEPLOYMENT,
                    props) == []


def test_a_pod_without_gpus_need_not_tolerate_the_gpu_taint() -> None:
    rule = rule_named("kubernetes-workload-tolerate-gpu-taint")
    props = mutate(deployment(), f"{SERVER}.resources", {
        "requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}})
    with pytest.raises(NotApplicable, match="requests no nvidia.com/gpu"):
        messages(rule, DEPLOYMENT, props)


def test_a_single_replica_without_autoscaler_needs_no_budget() -> None:
    rule = rule_named("kubernetes-apps-v1-deployment-require-pod-disruption-budget")
    props = mutate(deployment(), "spec.replicas", 1)
    stack = compliant_stack({DEPLOYMENT: props,
                             SCALED_OBJECT: mutate(scaled_object(), "spec.scaleTargetRef.name",
                                                   "other"),
                             PDB: mutate(pdb(), "metadata.namespace", "elsewhere")})
    assert rule.messages(stack, context()) == []


def _with_hpa(hpa_props: dict) -> Stack:
    """The compliant stack with an HPA instead of the ScaledObject as the autoscaler."""
    stack = compliant_stack()
    return Stack(tuple(r for r in stack.resources if r.type != SCALED_OBJECT)
                 + (subject(HPA, hpa_props),))


def test_an_hpa_still_counts_as_the_autoscaler() -> None:
    stack = _with_hpa(hpa())
    assert rule_named("kubernetes-apps-v1-deployment-require-autoscaler").messages(
        stack, context("staging")) == []
    # Its ceiling (8) is what needs the budget.
    budget = rule_named("kubernetes-apps-v1-deployment-require-pod-disruption-budget")
    unbudgeted = Stack(tuple(r for r in stack.resources if r.type != PDB))
    assert budget.messages(unbudgeted, context()) == [budget.message(
        f"{WORKLOAD} runs up to 8 replicas but no PodDisruptionBudget in its namespace selects "
        "its pods")]
    unscaled = _with_hpa(mutate(hpa(), "spec.scaleTargetRef.name", "other"))
    assert rule_named("kubernetes-apps-v1-deployment-require-autoscaler").messages(
        unscaled, context("staging"))


def test_an_hpa_below_the_floor_fails_in_prod() -> None:
    rule = rule_named("kubernetes-autoscaler-configure-min-replicas")
    assert rule.messages(subject(HPA, hpa()), context("prod")) == []
    assert rule.messages(subject(HPA, mutate(hpa(), "spec.minReplicas", 1)), context("prod")) == [
        rule.message("HorizontalPodAutoscaler aiinfra/aiinfra-serving has minReplicas 1, "
                     "below 2")]


def test_a_scaled_object_without_a_kind_targets_a_deployment() -> None:
    props = mutate(scaled_object(), "spec.scaleTargetRef", {"name": "aiinfra-serving"})
    rule = rule_named("kubernetes-apps-v1-deployment-require-autoscaler")
    assert rule.messages(compliant_stack({SCALED_OBJECT: props}), context("staging")) == []
