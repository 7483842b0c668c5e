"""Admission inside the cluster: ValidatingAdmissionPolicies (CEL) and their bindings.

Pod Security Admission (the namespace labels, ``pod_security_labels``) covers privilege and
host access; these policies cover what it does not: GPU access without a GPU request,
privileged or SYS_ADMIN containers outside the GPU DaemonSets' namespace, who may land on GPU
nodes, and, in the serving namespace, requests and limits, probes, image digests and autoscaler
bounds. They refuse what ``kubectl``, Helm or another pipeline applies, not only this program.

``aiinfra check`` evaluates the expressions of the rendered objects on the rendered manifests
(``policies/kubernetes/_admission.py``), so write them in the CEL both sides share: ``has()``,
``all``/``exists``/``filter``/``map``, ``in``, ``matches`` (RE2), ``startsWith``; no Kubernetes
library functions (quantity, strings ``join``, optionals). Every optional field is read behind
``has()``: an evaluation error refuses the object (``failurePolicy: Fail``).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra.components.base import k8s_child

API_VERSION = "admissionregistration.k8s.io/v1"  # GA since Kubernetes 1.30
GPU = "nvidia.com/gpu"
GPU_NAMESPACE = "gpu-operator"          # the device plugin and DCGM exporter (DaemonSets)
NODE_EXPORTER_NAMESPACE = "node-exporter"
SERVING_NAMESPACE = "aiinfra"
# Node agents: they tolerate every taint, and run wherever nodes do.
NODE_AGENT_NAMESPACES = ("kube-system", GPU_NAMESPACE, NODE_EXPORTER_NAMESPACE)
# Where privileged containers and SYS_ADMIN stay allowed: EKS's own add-ons (aws-node,
# kube-proxy, the CSI node plugins) and DCGM, which reads the GPUs' counters with SYS_ADMIN.
PRIVILEGED_NAMESPACES = ("kube-system", GPU_NAMESPACE)

LABELS = {"app.kubernetes.io/part-of": "aiinfra", "app.kubernetes.io/component": "admission"}

WORKLOAD_RULES = [{"apiGroups": ["", "apps", "batch"], "apiVersions": ["v1"],
                   "operations": ["CREATE", "UPDATE"],
                   "resources": ["pods", "deployments", "statefulsets", "daemonsets",
                                 "replicasets", "jobs", "cronjobs"]}]
AUTOSCALER_RULES = [
    {"apiGroups": ["autoscaling"], "apiVersions": ["v2"], "operations": ["CREATE", "UPDATE"],
     "resources": ["horizontalpodautoscalers"]},
    {"apiGroups": ["keda.sh"], "apiVersions": ["v1alpha1"], "operations": ["CREATE", "UPDATE"],
     "resources": ["scaledobjects"]}]

POD_SPEC = ("object.kind == 'Pod' ? object.spec : (object.kind == 'CronJob' ? "
            "object.spec.jobTemplate.spec.template.spec : object.spec.template.spec)")
CONTAINERS = ("(has(variables.podSpec.initContainers) ? variables.podSpec.initContainers : [])"
              " + variables.podSpec.containers")
LIMITS_GPU = f"has(c.resources) && has(c.resources.limits) && '{GPU}' in c.resources.limits"
REQUESTS_GPU = (f"has(c.resources) && ((has(c.resources.limits) && '{GPU}' in "
                f"c.resources.limits) || (has(c.resources.requests) && '{GPU}' in "
                "c.resources.requests))")
WORKLOAD_VARIABLES = [{"name": "podSpec", "expression": POD_SPEC},
                      {"name": "containers", "expression": CONTAINERS}]


@dataclass(frozen=True)
class AdmissionPolicy:
    """One ValidatingAdmissionPolicy and the namespaces its binding selects."""

    name: str
    resource_rules: list[dict]
    variables: list[dict]
    validations: list[dict]
    namespace_selector: dict
    match_conditions: tuple[dict, ...] = ()

    def policy(self) -> dict:
        spec: dict = {"failurePolicy": "Fail",
                      "matchConstraints": {"resourceRules": self.resource_rules},
                      "variables": self.variables, "validations": self.validations}
        if self.match_conditions:
            spec["matchConditions"] = list(self.match_conditions)
        return {"apiVersion": API_VERSION, "kind": "ValidatingAdmissionPolicy",
                "metadata": {"name": self.name, "labels": LABELS}, "spec": spec}

    def binding(self) -> dict:
        return {"apiVersion": API_VERSION, "kind": "ValidatingAdmissionPolicyBinding",
                "metadata": {"name": self.name, "labels": LABELS},
                "spec": {"policyName": self.name, "validationActions": ["Deny"],
                         "matchResources": {"namespaceSelector": self.namespace_selector}}}


def _outside(namespaces: tuple[str, ...]) -> dict:
    return {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn",
                                  "values": list(namespaces)}]}


def _inside(*namespaces: str) -> dict:
    return {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In",
                                  "values": list(namespaces)}]}


def _validation(expression: str, message: str) -> dict:
    return {"expression": expression, "message": message, "reason": "Forbidden"}


def gpu_access() -> AdmissionPolicy:
    # NVIDIA's container runtime hands a container the GPUs NVIDIA_VISIBLE_DEVICES names
    # whether or not the device plugin allocated them (k8s-device-plugin PR #1606).
    return AdmissionPolicy(
        "aiinfra-gpu-access", WORKLOAD_RULES,
        [*WORKLOAD_VARIABLES,
         {"name": "limitsGpus", "expression": f"variables.containers.exists(c, {LIMITS_GPU})"}],
        [_validation(
            "variables.containers.all(c, !has(c.env) || !c.env.exists(e, e.name == "
            "'NVIDIA_VISIBLE_DEVICES' && (!has(e.value) || !(e.value in ['void', 'none']))) || "
            f"({LIMITS_GPU}))",
            f"a container sets NVIDIA_VISIBLE_DEVICES without limits {GPU}: the NVIDIA "
            "runtime would hand it GPUs the scheduler never allocated"),
         _validation(
            "!has(variables.podSpec.volumes) || variables.limitsGpus || "
            "!variables.podSpec.volumes.exists(v, has(v.hostPath) && (v.hostPath.path == "
            "'/dev' || v.hostPath.path.startsWith('/dev/')))",
            f"the pod mounts host device paths (/dev) without limits {GPU}")],
        _outside(PRIVILEGED_NAMESPACES))


def privileged_containers() -> AdmissionPolicy:
    return AdmissionPolicy(
        "aiinfra-privileged-containers", WORKLOAD_RULES, list(WORKLOAD_VARIABLES),
        [_validation(
            "variables.containers.all(c, !has(c.securityContext) || "
            "!has(c.securityContext.privileged) || !c.securityContext.privileged)",
            f"privileged containers run only in {', '.join(PRIVILEGED_NAMESPACES)}"),
         _validation(
            "variables.containers.all(c, !has(c.securityContext) || "
            "!has(c.securityContext.capabilities) || "
            "!has(c.securityContext.capabilities.add) || "
            "!c.securityContext.capabilities.add.exists(a, a in ['SYS_ADMIN', 'CAP_SYS_ADMIN', "
            "'ALL']))",
            f"SYS_ADMIN is added only in {', '.join(PRIVILEGED_NAMESPACES)} (DCGM's namespace)")],
        _outside(PRIVILEGED_NAMESPACES))


def gpu_nodes() -> AdmissionPolicy:
    tolerates = ("has(variables.podSpec.tolerations) && variables.podSpec.tolerations.exists(t, "
                 f"(has(t.key) ? (t.key == '{GPU}' && ((has(t.operator) && t.operator == "
                 "'Exists') || (has(t.value) && t.value == 'true'))) : (has(t.operator) && "
                 "t.operator == 'Exists')) && (!has(t.effect) || t.effect == 'NoSchedule'))")
    selects = ("has(variables.podSpec.nodeSelector) && variables.podSpec.nodeSelector.exists(k, "
               f"k.startsWith('{GPU}'))")
    return AdmissionPolicy(
        "aiinfra-gpu-nodes", WORKLOAD_RULES,
        [*WORKLOAD_VARIABLES,
         {"name": "requestsGpus", "expression": f"variables.containers.exists(c, {REQUESTS_GPU})"},
         {"name": "toleratesGpuTaint", "expression": tolerates},
         {"name": "selectsGpuNodes", "expression": selects}],
        [_validation("!variables.requestsGpus || variables.toleratesGpuTaint",
                     f"the pod requests {GPU} but does not tolerate the {GPU}:NoSchedule taint"),
         _validation("variables.requestsGpus || !variables.toleratesGpuTaint",
                     f"the pod tolerates the {GPU}:NoSchedule taint but requests no {GPU}: only "
                     "GPU work lands on GPU nodes"),
         _validation("variables.requestsGpus || !variables.selectsGpuNodes",
                     f"the pod selects GPU nodes but requests no {GPU}")],
        _outside(NODE_AGENT_NAMESPACES))


def workload_resources() -> AdmissionPolicy:
    return AdmissionPolicy(
        "aiinfra-workload-resources", WORKLOAD_RULES, list(WORKLOAD_VARIABLES),
        [_validation(
            "variables.containers.all(c, has(c.resources) && has(c.resources.requests) && "
            "has(c.resources.limits) && 'cpu' in c.resources.requests && 'memory' in "
            "c.resources.requests && 'cpu' in c.resources.limits && 'memory' in "
            "c.resources.limits)",
            "every container, init containers included, sets requests and limits for cpu and "
            "memory"),
         _validation(
            "variables.containers.all(c, !has(c.resources) || !has(c.resources.requests) || "
            f"!('{GPU}' in c.resources.requests) || ({LIMITS_GPU}))",
            f"a container requests {GPU} without a limit on it")],
        _inside(SERVING_NAMESPACE))


def workload_probes() -> AdmissionPolicy:
    return AdmissionPolicy(
        "aiinfra-workload-probes",
        [{**WORKLOAD_RULES[0], "resources": ["pods", "deployments", "statefulsets",
                                             "daemonsets", "replicasets"]}],
        list(WORKLOAD_VARIABLES),
        [_validation("variables.podSpec.containers.all(c, has(c.readinessProbe) && "
                     "has(c.livenessProbe))",
                     "every long-running container defines a readinessProbe and a "
                     "livenessProbe")],
        _inside(SERVING_NAMESPACE),
        # A Job's pods serve no traffic.
        ({"name": "not-a-batch-pod",
          "expression": "!(object.kind == 'Pod' && has(object.metadata.ownerReferences) && "
                        "object.metadata.ownerReferences.exists(r, r.kind == 'Job'))"},))


def image_digests() -> AdmissionPolicy:
    return AdmissionPolicy(
        "aiinfra-image-digests", WORKLOAD_RULES, list(WORKLOAD_VARIABLES),
        [_validation("variables.containers.all(c, c.image.matches('@sha256:[0-9a-f]{64}$'))",
                     "every image is pinned by digest (name:tag@sha256:...)")],
        _inside(SERVING_NAMESPACE))


def autoscaler_bounds(floor: int) -> AdmissionPolicy:
    """maxReplicas at least minReplicas; at least ``floor`` replicas, KEDA's idle count too."""
    validations = [_validation("variables.maximum >= variables.minimum",
                               "the autoscaler's maximum is below its minimum")]
    if floor > 1:
        validations += [
            _validation(f"variables.minimum >= {floor}",
                        f"the autoscaler keeps fewer than {floor} replicas"),
            _validation(f"object.kind != 'ScaledObject' || !has(object.spec.idleReplicaCount) || "
                        f"object.spec.idleReplicaCount >= {floor}",
                        f"KEDA's idleReplicaCount is below {floor} replicas")]
    return AdmissionPolicy(
        "aiinfra-autoscaler-bounds", AUTOSCALER_RULES,
        # Each controller's defaults for what is left unset (KEDA: 0 and 100; HPA: 1).
        [{"name": "minimum", "expression": (
            "object.kind == 'ScaledObject' ? (has(object.spec.minReplicaCount) ? "
            "object.spec.minReplicaCount : 0) : (has(object.spec.minReplicas) ? "
            "object.spec.minReplicas : 1)")},
         {"name": "maximum", "expression": (
            "object.kind == 'ScaledObject' ? (has(object.spec.maxReplicaCount) ? "
            "object.spec.maxReplicaCount : 100) : object.spec.maxReplicas")}],
        validations, _inside(SERVING_NAMESPACE))


def admission_policies(production: bool) -> list[AdmissionPolicy]:
    """The stack's policies: digests and a two-replica floor in prod only (as the pack)."""
    policies = [gpu_access(), privileged_containers(), gpu_nodes(), workload_resources(),
                workload_probes(), autoscaler_bounds(2 if production else 1)]
    return policies + [image_digests()] if production else policies


def pod_security_labels(enforce: str, *, version: str, warn: str | None = None) -> dict:
    """Pod Security Admission labels: ``enforce`` refuses, ``warn`` and ``audit`` report at the
    (stricter) ``warn`` level; the version pins the standard to the cluster's release."""
    warn = warn or enforce
    labels = {}
    for mode, level in (("enforce", enforce), ("warn", warn), ("audit", warn)):
        labels[f"pod-security.kubernetes.io/{mode}"] = level
        labels[f"pod-security.kubernetes.io/{mode}-version"] = f"v{version}"
    return labels


class Admission(pulumi.ComponentResource):
    def __init__(self, name: str, provider: pulumi.ProviderResource, *, production: bool,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aiinfra:admission:Admission", name, None, opts)
        self.policies = []
        for spec in admission_policies(production):
            body = spec.policy()
            policy = k8s.admissionregistration.v1.ValidatingAdmissionPolicy(
                f"{name}-{spec.name}", metadata=body["metadata"], spec=body["spec"],
                opts=k8s_child(self, provider))
            binding = spec.binding()
            self.policies.append(k8s.admissionregistration.v1.ValidatingAdmissionPolicyBinding(
                f"{name}-{spec.name}", metadata=binding["metadata"], spec=binding["spec"],
                opts=k8s_child(self, provider, depends_on=[policy])))
        self.register_outputs({})
