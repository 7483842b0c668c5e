"""kubernetes-karpenter-sh-v1-nodepool-diversify-spot-instance-types: spot pools can find
capacity."""

from __future__ import annotations

from collections.abc import Iterator

from policies.core import Context, NotApplicable, Rule, Subject
from policies.kubernetes._karpenter import NODE_POOL, capacity_types, instance_types, object_name


def check(subject: Subject, context: Context) -> Iterator[str]:
    if "spot" not in capacity_types(subject):
        raise NotApplicable("not a spot NodePool")
    types = instance_types(subject)
    if types is None:
        return  # no In requirement on the instance type: every type the others allow
    minimum = int(context.settings["minimumInstanceTypes"])
    if len(types) < minimum:
        yield (f"spot NodePool {object_name(subject)} allows {len(types)} instance type(s) "
               f"({', '.join(types) or 'none'}), fewer than {minimum}")


RULE = Rule(
    name="kubernetes-karpenter-sh-v1-nodepool-diversify-spot-instance-types",
    description="NodePools that may launch spot allow at least three instance types.",
    severity="medium",
    rationale="Karpenter launches spot from the pools with the most spare capacity among the "
              "types it may use: with one or two types a shortage or an interruption wave "
              "leaves it nothing to launch.",
    remediation="List three or more instance types of the pool's GPU shape (e.g. g6.xlarge, "
                "g6.2xlarge, g5.2xlarge) in the node.kubernetes.io/instance-type requirement "
                "(gpuPools[].instanceTypes).",
    resource_types=(NODE_POOL,),
    check_resource=check,
    config_schema={"minimumInstanceTypes": {"type": "integer", "minimum": 1, "default": 3,
                                            "description": "fewest types a spot pool allows"}},
    tags=("reliability", "cost", "spot"),
)
