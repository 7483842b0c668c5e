"""aws-rds-instance-require-custom-parameter-group: Postgres runs with settings sized for it."""

from __future__ import annotations

from collections.abc import Iterator

from policies.aws._types import RDS_INSTANCE
from policies.core import Context, Rule, Subject


def check(subject: Subject, context: Context) -> Iterator[str]:
    group = str(subject.props.get("parameterGroupName") or "")
    if not group:
        yield f"RDS instance {subject.name} has no parameter group (parameterGroupName unset)"
    elif group.startswith("default."):
        yield f"RDS instance {subject.name} uses the engine default parameter group {group}"


RULE = Rule(
    name="aws-rds-instance-require-custom-parameter-group",
    description="RDS instances use a parameter group of their own, not the engine default.",
    severity="medium",
    rationale="The default group cannot be changed and is sized for no workload in particular, "
              "so memory and planner settings cannot follow the instance class.",
    remediation="Attach an aws.rds.ParameterGroup computed for the instance class "
                "(infra/pgtune.py) through parameter_group_name.",
    resource_types=(RDS_INSTANCE,),
    check_resource=check,
    tags=("performance", "reliability"),
)
