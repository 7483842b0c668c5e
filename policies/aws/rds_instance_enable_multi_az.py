"""aws-rds-instance-enable-multi-az: the prod database survives an availability-zone loss."""

from __future__ import annotations

from collections.abc import Iterator

from policies.aws._types import RDS_INSTANCE
from policies.core import Context, Rule, Subject, truthy


def check(subject: Subject, context: Context) -> Iterator[str]:
    if not truthy(subject.props.get("multiAz")):
        yield f"RDS instance {subject.name} runs in one availability zone (multiAz is not true)"


RULE = Rule(
    name="aws-rds-instance-enable-multi-az",
    description="In prod, RDS instances run Multi-AZ with a synchronous standby.",
    severity="high",
    rationale="An AZ outage or a failed instance stops the database until it is rebuilt; "
              "Multi-AZ fails over in about a minute.",
    remediation="Set database.multiAz: true (multi_az=True) in Pulumi.prod.yaml.",
    resource_types=(RDS_INSTANCE,),
    check_resource=check,
    environments=frozenset({"prod"}),
    tags=("reliability",),
)
