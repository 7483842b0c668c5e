"""aws-rds-instance-enable-deletion-protection: prod's database cannot be deleted by accident."""

from __future__ import annotations

from collections.abc import Iterator

from policies.aws._types import RDS_INSTANCE
from policies.core import Context, Rule, Subject, truthy


def check(subject: Subject, context: Context) -> Iterator[str]:
    if not truthy(subject.props.get("deletionProtection")):
        yield f"RDS instance {subject.name} can be deleted (deletionProtection is not true)"


RULE = Rule(
    name="aws-rds-instance-enable-deletion-protection",
    description="In prod, RDS instances have deletion protection.",
    severity="high",
    rationale="A mistaken destroy or a replacing change would drop the production database.",
    remediation="Set database.deletionProtection: true (deletion_protection=True) in "
                "Pulumi.prod.yaml.",
    resource_types=(RDS_INSTANCE,),
    check_resource=check,
    environments=frozenset({"prod"}),
    tags=("reliability",),
)
