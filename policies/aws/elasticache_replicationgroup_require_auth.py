"""aws-elasticache-replicationgroup-require-auth: clients authenticate to Redis."""

from __future__ import annotations

from collections.abc import Iterator

from policies.aws._types import REPLICATION_GROUP
from policies.core import Context, Rule, Subject, as_list


def check(subject: Subject, context: Context) -> Iterator[str]:
    if not subject.props.get("authToken") and not as_list(subject.props.get("userGroupIds")):
        yield (f"ElastiCache replication group {subject.name} accepts clients without "
               "authentication (no authToken or userGroupIds)")


RULE = Rule(
    name="aws-elasticache-replicationgroup-require-auth",
    description="ElastiCache replication groups require an AUTH token or RBAC user groups.",
    severity="high",
    rationale="Any pod that reaches port 6379 could read or poison the prediction cache.",
    remediation="Set auth_token (with transit encryption) or attach RBAC user_group_ids.",
    resource_types=(REPLICATION_GROUP,),
    check_resource=check,
    tags=("security",),
)
