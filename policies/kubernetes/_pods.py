"""Pod templates of Kubernetes workloads, and the questions the workload rules ask of them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from policies.core import Subject, as_list, as_map

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
STATEFUL_SET = "kubernetes:apps/v1:StatefulSet"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"  # KEDA: it makes and owns an HPA
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
WORKLOADS = (DEPLOYMENT, STATEFUL_SET, "kubernetes:apps/v1:DaemonSet",
             "kubernetes:apps/v1:ReplicaSet", "kubernetes:batch/v1:Job",
             "kubernetes:batch/v1:CronJob", "kubernetes:core/v1:Pod")
GPU = "nvidia.com/gpu"
GPU_NODE_LABEL_PREFIX = "nvidia.com/gpu"


class Container(NamedTuple):
    name: str
    kind: str  # "container" or "init container"
    spec: Mapping[str, Any]

    @property
    def label(self) -> str:
        return f"{self.kind} '{self.name}'"


def kind(subject: Subject) -> str:
    return subject.type.rsplit(":", 1)[-1]


def workload(subject: Subject) -> str:
    """``Deployment aiinfra/aiinfra-serving``: kind, namespace and object name."""
    metadata = as_map(subject.props.get("metadata"))
    name = metadata.get("name") or subject.name
    return f"{kind(subject)} {metadata.get('namespace') or 'default'}/{name}"


def pod_spec(subject: Subject) -> Mapping[str, Any]:
    spec = as_map(subject.props.get("spec"))
    if subject.type == "kubernetes:core/v1:Pod":
        return spec
    if subject.type == "kubernetes:batch/v1:CronJob":
        spec = as_map(as_map(spec.get("jobTemplate")).get("spec"))
    return as_map(as_map(spec.get("template")).get("spec"))


def pod_labels(subject: Subject) -> Mapping[str, Any]:
    template = as_map(as_map(subject.props.get("spec")).get("template"))
    return as_map(as_map(template.get("metadata")).get("labels"))


def containers(subject: Subject, *, init: bool = True) -> list[Container]:
    pod = pod_spec(subject)
    found = [Container(str(c.get("name")), "container", c)
             for c in map(as_map, as_list(pod.get("containers")))]
    if init:
        found += [Container(str(c.get("name")), "init container", c)
                  for c in map(as_map, as_list(pod.get("initContainers")))]
    return found


def security(container: Container) -> Mapping[str, Any]:
    return as_map(container.spec.get("securityContext"))


def pod_security(subject: Subject) -> Mapping[str, Any]:
    return as_map(pod_spec(subject).get("securityContext"))


def effective(subject: Subject, container: Container, key: str) -> Any:
    """A security setting as Kubernetes applies it: the container's, else the pod's."""
    own = security(container)
    return own[key] if key in own else pod_security(subject).get(key)


def resources(container: Container, section: str) -> Mapping[str, Any]:
    return as_map(as_map(container.spec.get("resources")).get(section))


def gpus(container: Container, section: str) -> int:
    try:
        return int(str(resources(container, section).get(GPU, 0)))
    except ValueError:
        return 0


def requests_gpus(subject: Subject) -> bool:
    return any(gpus(c, "requests") or gpus(c, "limits") for c in containers(subject))


def gpu_node_selection(subject: Subject) -> str | None:
    """How the pod is steered onto GPU nodes, or None when it is not."""
    pod = pod_spec(subject)
    for key in as_map(pod.get("nodeSelector")):
        if str(key).startswith(GPU_NODE_LABEL_PREFIX):
            return f"nodeSelector {key}"
    if tolerates_gpu_taint(subject):
        return f"a toleration for the {GPU} taint"
    return None


def tolerates_gpu_taint(subject: Subject) -> bool:
    for toleration in map(as_map, as_list(pod_spec(subject).get("tolerations"))):
        key = toleration.get("key")
        operator = toleration.get("operator", "Equal")
        effect = toleration.get("effect")
        if effect not in (None, "", "NoSchedule"):
            continue
        if key in (None, "") and operator == "Exists":
            return True
        if key == GPU and (operator == "Exists" or toleration.get("value") == "true"):
            return True
    return False


def namespace(subject: Subject) -> str:
    return as_map(subject.props.get("metadata")).get("namespace") or "default"


def object_name(subject: Subject) -> str:
    return as_map(subject.props.get("metadata")).get("name") or subject.name
