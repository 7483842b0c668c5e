"""aws-eks-nodegroup-diversify-spot-instance-types: spot pools can find capacity."""

from __future__ import annotations

from collections.abc import Iterator

from policies.aws._types import NODE_GROUP
from policies.core import Context, NotApplicable, Rule, Subject, as_list


def check(subject: Subject, context: Context) -> Iterator[str]:
    if subject.props.get("capacityType") != "SPOT":
        raise NotApplicable("not a spot node group")
    types = [str(t) for t in as_list(subject.props.get("instanceTypes"))]
    minimum = int(context.settings["minimumInstanceTypes"])
    if len(types) < minimum:
        yield (f"spot node group {subject.name} lists {len(types)} instance type(s) "
               f"({', '.join(types) or 'none'}), fewer than {minimum}")


RULE = Rule(
    name="aws-eks-nodegroup-diversify-spot-instance-types",
    description="Spot node groups list at least three instance types.",
    severity="medium",
    rationale="A spot pool of one or two types loses its capacity when those types run short, "
              "often all at once.",
    remediation="List three or more instance types of similar shape (e.g. g6.xlarge, g6.2xlarge, "
                "g5.xlarge) in instanceTypes.",
    resource_types=(NODE_GROUP,),
    check_resource=check,
    config_schema={"minimumInstanceTypes": {"type": "integer", "minimum": 1, "default": 3,
                                            "description": "fewest types a spot pool lists"}},
    tags=("reliability", "cost", "spot"),
)
