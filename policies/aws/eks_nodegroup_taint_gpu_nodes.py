"""aws-eks-nodegroup-taint-gpu-nodes: only GPU work lands on GPU nodes."""

from __future__ import annotations

from collections.abc import Iterator

from policies.aws._types import GPU_TAINT_KEY, NODE_GROUP, is_gpu_node_group
from policies.core import Context, NotApplicable, Rule, Subject, as_list, as_map


def check(subject: Subject, context: Context) -> Iterator[str]:
    if not is_gpu_node_group(subject):
        raise NotApplicable("not a GPU node group")
    taints = map(as_map, as_list(subject.props.get("taints")))
    if not any(t.get("key") == GPU_TAINT_KEY and t.get("effect") == "NO_SCHEDULE"
               for t in taints):
        yield f"GPU node group {subject.name} has no {GPU_TAINT_KEY} NO_SCHEDULE taint"


RULE = Rule(
    name="aws-eks-nodegroup-taint-gpu-nodes",
    description="GPU node groups carry the nvidia.com/gpu NO_SCHEDULE taint.",
    severity="medium",
    rationale="Without it system and CPU pods fill the most expensive nodes and keep GPU pods "
              "Pending.",
    remediation="Add taints=[{key: 'nvidia.com/gpu', value: 'true', effect: 'NO_SCHEDULE'}] to "
                "the node group.",
    resource_types=(NODE_GROUP,),
    check_resource=check,
    tags=("gpu", "cost"),
)
