"""aws-rds-instance-enable-storage-encryption: the database's disks and snapshots are encrypted."""

from __future__ import annotations

from collections.abc import Iterator

from policies.aws._types import RDS_INSTANCE
from policies.core import Context, Rule, Subject, truthy


def check(subject: Subject, context: Context) -> Iterator[str]:
    if not truthy(subject.props.get("storageEncrypted")):
        yield f"RDS instance {subject.name} stores data unencrypted (storageEncrypted is not true)"


RULE = Rule(
    name="aws-rds-instance-enable-storage-encryption",
    description="RDS instances encrypt their storage, backups and snapshots.",
    severity="high",
    rationale="Disks, backups and snapshots would hold the prediction log in clear text, and "
              "encryption cannot be turned on later without a snapshot restore.",
    remediation="Create the instance with storage_encrypted=True (optionally a kms_key_id).",
    resource_types=(RDS_INSTANCE,),
    check_resource=check,
    tags=("security", "encryption"),
)
