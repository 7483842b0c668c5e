"""Which autoscalers (KEDA ScaledObjects, HorizontalPodAutoscalers) and PodDisruptionBudgets
belong to which workload."""

from __future__ import annotations

from typing import NamedTuple

from policies.core import Stack, Subject, as_map
from policies.kubernetes._pods import (
    HPA,
    PDB,
    SCALED_OBJECT,
    kind,
    namespace,
    object_name,
    pod_labels,
)

AUTOSCALERS = (SCALED_OBJECT, HPA)


class Bounds(NamedTuple):
    """An autoscaler's replica range as its controller applies it, with the field names."""

    minimum: int
    maximum: int
    min_field: str
    # KEDA's idleReplicaCount: what it scales to, below minimum, while no trigger is active.
    idle: int | None = None


def bounds(scaler: Subject) -> Bounds:
    """The range, with each controller's defaults for what is left unset."""
    spec = as_map(scaler.props.get("spec"))
    if scaler.type == SCALED_OBJECT:
        idle = spec.get("idleReplicaCount")
        return Bounds(int(spec.get("minReplicaCount", 0)), int(spec.get("maxReplicaCount", 100)),
                      "minReplicaCount", None if idle is None else int(idle))
    return Bounds(int(spec.get("minReplicas", 1)), int(spec.get("maxReplicas", 1)),
                  "minReplicas")


def autoscalers(stack: Stack, target: Subject) -> list[Subject]:
    """ScaledObjects and HPAs in the workload's namespace whose scaleTargetRef names it (a
    ScaledObject's kind defaults to Deployment)."""
    found = []
    for scaler in stack.of_type(*AUTOSCALERS):
        ref = as_map(scaler.get("spec.scaleTargetRef"))
        default_kind = "Deployment" if scaler.type == SCALED_OBJECT else None
        if (namespace(scaler) == namespace(target)
                and ref.get("kind", default_kind) == kind(target)
                and ref.get("name") == object_name(target)):
            found.append(scaler)
    return found


def max_replicas(stack: Stack, target: Subject) -> int:
    """The most replicas the workload may run: its own count or its autoscalers' ceiling."""
    replicas = target.get("spec.replicas", 1)
    ceilings = [bounds(scaler).maximum for scaler in autoscalers(stack, target)]
    return max([int(replicas), *ceilings])


def budgets(stack: Stack, target: Subject) -> list[Subject]:
    """PDBs in the workload's namespace whose matchLabels all hold on its pod template."""
    labels = pod_labels(target)
    found = []
    for pdb in stack.of_type(PDB):
        selector = as_map(pdb.get("spec.selector"))
        match = as_map(selector.get("matchLabels"))
        if namespace(pdb) != namespace(target) or not (match or selector.get("matchExpressions")):
            continue
        if all(labels.get(key) == value for key, value in match.items()):
            found.append(pdb)
    return found
