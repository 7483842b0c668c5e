"""aws-rds-instance-configure-backup-retention: 7 days of backups in prod, some elsewhere."""

from __future__ import annotations

from collections.abc import Iterator

from policies.aws._types import RDS_INSTANCE
from policies.core import Context, Rule, Subject

MINIMUM_DAYS = {"prod": 7}


def check(subject: Subject, context: Context) -> Iterator[str]:
    minimum = int(context.settings.get("minimumDays") or MINIMUM_DAYS.get(context.environment, 1))
    days = int(subject.props.get("backupRetentionPeriod") or 0)
    if days < minimum:
        yield (f"RDS instance {subject.name} keeps backups for {days} day(s), fewer than "
               f"{minimum} in {context.environment}")


RULE = Rule(
    name="aws-rds-instance-configure-backup-retention",
    description="RDS instances keep automated backups: at least 7 days in prod, 1 elsewhere.",
    severity="high",
    rationale="Point-in-time recovery reaches back only as far as the retention: a bad "
              "migration noticed after it cannot be undone.",
    remediation="Set database.backupRetentionDays (backup_retention_period) to 7 or more in prod "
                "and at least 1 elsewhere.",
    resource_types=(RDS_INSTANCE,),
    check_resource=check,
    config_schema={"minimumDays": {"type": "integer", "minimum": 1, "description":
                                   "override the per-environment minimum (7 prod, 1 else)"}},
    tags=("reliability", "backup"),
)
