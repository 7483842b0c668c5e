"""aws-eks-nodegroup-require-gpu-baseline-capacity: prod keeps GPUs spot cannot take away."""

from __future__ import annotations

from collections.abc import Iterator

from policies.aws._types import NODE_GROUP, is_gpu_node_group
from policies.core import Context, Finding, Rule, Stack


def check(stack: Stack, context: Context) -> Iterator[Finding]:
    for group in stack.of_type(NODE_GROUP):
        on_demand = group.props.get("capacityType", "ON_DEMAND") == "ON_DEMAND"
        if on_demand and is_gpu_node_group(group) and int(
                group.get("scalingConfig.minSize", 0)) >= 1:
            return
    yield Finding("no GPU node group keeps on-demand or reserved capacity (capacityType "
                  "ON_DEMAND with scalingConfig.minSize of 1 or more)")


RULE = Rule(
    name="aws-eks-nodegroup-require-gpu-baseline-capacity",
    description="In prod, at least one GPU node group is on-demand (or reserved) with a "
                "minimum size of one or more.",
    severity="high",
    rationale="Spot gives two minutes' notice, less than a model load: without a non-spot floor "
              "an interruption wave takes serving down.",
    remediation="Add a gpuPools entry with capacity on-demand or reserved and minSize >= 1 to "
                "Pulumi.prod.yaml.",
    resource_types=(NODE_GROUP,),
    check_stack=check,
    environments=frozenset({"prod"}),
    tags=("reliability", "gpu", "spot"),
)
