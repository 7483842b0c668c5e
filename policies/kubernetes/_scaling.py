"""Which HorizontalPodAutoscalers and PodDisruptionBudgets belong to which workload."""

from __future__ import annotations

from policies.core import Stack, Subject, as_map
from policies.kubernetes._pods import HPA, PDB, kind, namespace, object_name, pod_labels


def autoscalers(stack: Stack, target: Subject) -> list[Subject]:
    """HPAs in the workload's namespace whose scaleTargetRef names it."""
    found = []
    for hpa in stack.of_type(HPA):
        ref = as_map(hpa.get("spec.scaleTargetRef"))
        if (namespace(hpa) == namespace(target) and ref.get("kind") == kind(target)
                and ref.get("name") == object_name(target)):
            found.append(hpa)
    return found


def max_replicas(stack: Stack, target: Subject) -> int:
    """The most replicas the workload may run: its own count or its autoscalers' ceiling."""
    replicas = target.get("spec.replicas", 1)
    ceilings = [hpa.get("spec.maxReplicas", 1) for hpa in autoscalers(stack, target)]
    return max([int(replicas), *(int(c) for c in ceilings)])


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
