"""aws-elasticache-replicationgroup-enable-encryption-at-rest: cached data is encrypted on disk."""

from __future__ import annotations

from collections.abc import Iterator

from policies.aws._types import REPLICATION_GROUP
from policies.core import Context, Rule, Subject, truthy


def check(subject: Subject, context: Context) -> Iterator[str]:
    if not truthy(subject.props.get("atRestEncryptionEnabled")):
        yield (f"ElastiCache replication group {subject.name} stores data unencrypted "
               "(atRestEncryptionEnabled is not true)")


RULE = Rule(
    name="aws-elasticache-replicationgroup-enable-encryption-at-rest",
    description="ElastiCache replication groups encrypt data at rest.",
    severity="high",
    rationale="Cached predictions, swap and snapshots would sit on disk in clear text, and the "
              "setting can only be chosen when the group is created.",
    remediation="Set at_rest_encryption_enabled=True.",
    resource_types=(REPLICATION_GROUP,),
    check_resource=check,
    tags=("security", "encryption"),
)
