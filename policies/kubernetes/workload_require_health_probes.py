"""kubernetes-workload-require-health-probes: readiness and liveness on serving containers."""

from __future__ import annotations

from collections.abc import Iterator

from policies.core import Context, NotApplicable, Rule, Subject
from policies.kubernetes._pods import WORKLOADS, containers, workload

BATCH = ("kubernetes:batch/v1:Job", "kubernetes:batch/v1:CronJob")
PROBES = ("readinessProbe", "livenessProbe")


def check(subject: Subject, context: Context) -> Iterator[str]:
    if subject.type in BATCH:
        raise NotApplicable("batch pods serve no traffic")
    for container in containers(subject, init=False):
        missing = [probe for probe in PROBES if not container.spec.get(probe)]
        if missing:
            yield f"{workload(subject)}: {container.label} has no {' and '.join(missing)}"


RULE = Rule(
    name="kubernetes-workload-require-health-probes",
    description="Long-running containers define readiness and liveness probes.",
    severity="medium",
    rationale="Without a readiness probe traffic reaches pods still loading their models; "
              "without a liveness probe a hung server is never restarted.",
    remediation="Add readinessProbe (GET /v2/health/ready) and livenessProbe (GET "
                "/v2/health/live); give slow model loads a startupProbe.",
    resource_types=WORKLOADS,
    check_resource=check,
    tags=("reliability",),
)
