"""kubernetes-karpenter-sh-v1-nodepool-require-limits: every NodePool has a ceiling."""

from __future__ import annotations

from collections.abc import Iterator

from policies.core import Context, Rule, Subject, as_map
from policies.kubernetes._karpenter import GPU, NODE_POOL, object_name, spec

# Resources every node of the pool has, so a limit on any of them caps the node count.
BOUNDING = ("cpu", "memory", "nodes", GPU)


def check(subject: Subject, context: Context) -> Iterator[str]:
    if spec(subject).get("replicas") is not None:
        return  # a static NodePool runs exactly its replicas
    limits = as_map(spec(subject).get("limits"))
    if not any(key in limits for key in BOUNDING):
        yield (f"NodePool {object_name(subject)} sets no limits on {', '.join(BOUNDING)}, so "
               "Karpenter launches nodes for as many pods as are pending")


RULE = Rule(
    name="kubernetes-karpenter-sh-v1-nodepool-require-limits",
    description="NodePools set spec.limits (cpu, memory, nodes or nvidia.com/gpu), so the "
                "capacity they may launch, and its cost, has a maximum.",
    severity="high",
    rationale="Karpenter adds nodes while pods are pending: without limits a runaway "
              "autoscaler, a crash-looping Job or a mistaken replica count buys GPU nodes "
              "until the account's quota stops it.",
    remediation="Set spec.limits, e.g. nvidia.com/gpu and cpu at maxNodes times the largest "
                "instance's (gpuPools[].maxNodes in Pulumi.<stack>.yaml).",
    resource_types=(NODE_POOL,),
    check_resource=check,
    tags=("cost",),
)
