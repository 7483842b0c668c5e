"""kubernetes-karpenter-sh-v1-nodepool-configure-gpu-safe-consolidation: consolidation never
evicts a serving model to save a node.

``WhenEmpty`` passes: only nodes with no pods (DaemonSets aside) go. ``WhenEmptyOrUnderutilized``
(the default when the field is left out) and ``Balanced`` also evict pods to pack them onto
fewer or cheaper nodes; on a GPU pool that means killing a model server and paying its image
pull, model load and warm-up again elsewhere. They pass only beside a disruption budget of
``nodes: "0"`` for the Underutilized reason (``reasons`` unset covers every reason), which
forbids that packing always or, with a ``schedule``, in the hours it names (peak).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from policies.core import Context, NotApplicable, Rule, Subject, as_list, as_map
from policies.kubernetes._karpenter import (
    DEFAULT_CONSOLIDATION,
    NODE_POOL,
    is_gpu_node_pool,
    object_name,
    spec,
)

SAFE = "WhenEmpty"
BLOCKING = ("0", "0%")


def _blocks_underutilized(budget: Mapping[str, Any]) -> bool:
    reasons = as_list(budget.get("reasons"))
    return str(budget.get("nodes")) in BLOCKING and (not reasons or "Underutilized" in reasons)


def check(subject: Subject, context: Context) -> Iterator[str]:
    if not is_gpu_node_pool(subject):
        raise NotApplicable("not a GPU NodePool")
    if spec(subject).get("replicas") is not None:
        raise NotApplicable("a static NodePool (replicas) does not consolidate")
    disruption = as_map(spec(subject).get("disruption"))
    policy = disruption.get("consolidationPolicy")
    if (policy or DEFAULT_CONSOLIDATION) == SAFE:
        return
    if any(_blocks_underutilized(b) for b in map(as_map, as_list(disruption.get("budgets")))):
        return
    shown = policy or f"unset, so {DEFAULT_CONSOLIDATION}"
    yield (f"GPU NodePool {object_name(subject)} evicts serving pods to consolidate "
           f"underutilized nodes (consolidationPolicy {shown}) and no disruption budget sets "
           "nodes \"0\" for Underutilized")


RULE = Rule(
    name="kubernetes-karpenter-sh-v1-nodepool-configure-gpu-safe-consolidation",
    description="GPU NodePools consolidate only empty nodes (consolidationPolicy WhenEmpty), or "
                "hold underutilized consolidation to nodes: \"0\" with a disruption budget.",
    severity="medium",
    rationale="Consolidating an underutilized GPU node evicts its model server to save part "
              "of a node, and the replica is gone for the minutes its image pull, model load "
              "and warm-up take; an empty node is the only one whose removal costs nothing, "
              "and the serving autoscaler empties nodes when load falls.",
    remediation="Set spec.disruption.consolidationPolicy: WhenEmpty with a consolidateAfter "
                "(e.g. 10m); to pack nodes off-peak only, keep WhenEmptyOrUnderutilized and add "
                "a budget {nodes: \"0\", reasons: [Underutilized], schedule, duration} over the "
                "peak hours.",
    resource_types=(NODE_POOL,),
    check_resource=check,
    tags=("gpu", "reliability"),
)
