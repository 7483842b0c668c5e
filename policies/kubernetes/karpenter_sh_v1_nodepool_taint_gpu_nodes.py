"""kubernetes-karpenter-sh-v1-nodepool-taint-gpu-nodes: only GPU work lands on GPU nodes."""

from __future__ import annotations

from collections.abc import Iterator

from policies.core import Context, NotApplicable, Rule, Subject, as_list, as_map
from policies.kubernetes._karpenter import (
    GPU,
    NODE_POOL,
    is_gpu_node_pool,
    object_name,
    template_spec,
)


def check(subject: Subject, context: Context) -> Iterator[str]:
    if not is_gpu_node_pool(subject):
        raise NotApplicable("not a GPU NodePool")
    taints = map(as_map, as_list(template_spec(subject).get("taints")))
    if not any(t.get("key") == GPU and t.get("effect") == "NoSchedule" for t in taints):
        yield f"GPU NodePool {object_name(subject)} has no {GPU}:NoSchedule taint"


RULE = Rule(
    name="kubernetes-karpenter-sh-v1-nodepool-taint-gpu-nodes",
    description="GPU NodePools give their nodes the nvidia.com/gpu:NoSchedule taint.",
    severity="medium",
    rationale="Without it Karpenter packs system and CPU pods onto the most expensive nodes, "
              "where they keep GPU pods Pending and hold GPU nodes from consolidating.",
    remediation="Add {key: nvidia.com/gpu, value: 'true', effect: NoSchedule} to the "
                "NodePool's spec.template.spec.taints (startupTaints are not enough: they are "
                "removed once the node is ready).",
    resource_types=(NODE_POOL,),
    check_resource=check,
    tags=("gpu", "cost"),
)
