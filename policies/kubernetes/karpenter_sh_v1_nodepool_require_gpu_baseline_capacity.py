"""kubernetes-karpenter-sh-v1-nodepool-require-gpu-baseline-capacity: prod keeps GPUs spot
cannot take away."""

from __future__ import annotations

from collections.abc import Iterator

from policies.core import Context, Finding, Rule, Stack
from policies.kubernetes._karpenter import (
    CAPACITY_TYPE,
    NODE_POOL,
    capacity_types,
    is_gpu_node_pool,
    object_name,
    spec,
    weight,
)


def check(stack: Stack, context: Context) -> Iterator[Finding]:
    pools = [p for p in stack.of_type(NODE_POOL) if is_gpu_node_pool(p)]
    steady = [p for p in pools if capacity_types(p) and "spot" not in capacity_types(p)]
    spot = [p for p in pools if "spot" in capacity_types(p)]
    if not steady:
        yield Finding("no GPU NodePool is limited to reserved or on-demand capacity (a "
                      f"{CAPACITY_TYPE} requirement without spot)")
        return
    # Karpenter fills the highest-weight NodePool that fits first; a static pool (replicas)
    # keeps its nodes whatever the weights.
    heaviest = max(spot, key=weight, default=None)
    for pool in steady:
        if int(spec(pool).get("replicas") or 0) >= 1 or heaviest is None or (
                weight(pool) > weight(heaviest)):
            return
    listed = ", ".join(f"{object_name(p)} (weight {weight(p)})" for p in steady)
    yield Finding(f"the non-spot GPU NodePool(s) {listed} fill only after spot NodePool "
                  f"{object_name(heaviest)} (weight {weight(heaviest)}), so spot takes the "
                  "GPU pods first")


RULE = Rule(
    name="kubernetes-karpenter-sh-v1-nodepool-require-gpu-baseline-capacity",
    description="In prod, a GPU NodePool limited to reserved or on-demand capacity is filled "
                "before any spot GPU NodePool (a higher weight, or static replicas).",
    severity="high",
    rationale="Spot gives two minutes' notice, less than a model load, and Karpenter places "
              "pods on the highest-weight NodePool first: without a non-spot pool that fills "
              "first an interruption wave takes every replica at once.",
    remediation="Add a gpuPools entry with capacity reserved to Pulumi.prod.yaml (its NodePool "
                "weighs 100, above spot's 50; on-demand pools weigh 10 and catch only "
                "overflow), or give a NodePool whose karpenter.sh/capacity-type allows only "
                "reserved and on-demand a weight above every spot GPU NodePool's.",
    resource_types=(NODE_POOL,),
    check_stack=check,
    environments=frozenset({"prod"}),
    tags=("reliability", "gpu", "spot"),
)
