"""aws-elasticache-replicationgroup-enable-encryption-in-transit: clients connect over TLS."""

from __future__ import annotations

from collections.abc import Iterator

from policies.aws._types import REPLICATION_GROUP
from policies.core import Context, Rule, Subject, truthy


def check(subject: Subject, context: Context) -> Iterator[str]:
    if not truthy(subject.props.get("transitEncryptionEnabled")):
        yield (f"ElastiCache replication group {subject.name} accepts unencrypted connections "
               "(transitEncryptionEnabled is not true)")


RULE = Rule(
    name="aws-elasticache-replicationgroup-enable-encryption-in-transit",
    description="ElastiCache replication groups require TLS.",
    severity="high",
    rationale="Anyone on the network path could read cached inputs and outputs, and the AUTH "
              "token would travel in clear text.",
    remediation="Set transit_encryption_enabled=True and connect with rediss://.",
    resource_types=(REPLICATION_GROUP,),
    check_resource=check,
    tags=("security", "encryption"),
)
