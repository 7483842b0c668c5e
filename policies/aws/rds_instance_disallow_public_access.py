"""aws-rds-instance-disallow-public-access: the database has no internet-facing endpoint."""

from __future__ import annotations

from collections.abc import Iterator

from policies.aws._types import RDS_INSTANCE
from policies.core import Context, Rule, Subject, truthy


def check(subject: Subject, context: Context) -> Iterator[str]:
    if truthy(subject.props.get("publiclyAccessible")):
        yield f"RDS instance {subject.name} is publicly accessible (publiclyAccessible: true)"


RULE = Rule(
    name="aws-rds-instance-disallow-public-access",
    description="RDS instances are not publicly accessible.",
    severity="critical",
    rationale="A public endpoint leaves the database one leaked password away from the internet.",
    remediation="Set publicly_accessible=False and reach the database from the cluster through "
                "its security group.",
    resource_types=(RDS_INSTANCE,),
    check_resource=check,
    tags=("security", "network"),
)
