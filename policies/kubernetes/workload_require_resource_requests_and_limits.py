"""kubernetes-workload-require-resource-requests-and-limits: cpu and memory, both ways."""

from __future__ import annotations

from collections.abc import Iterator

from policies.core import Context, Rule, Subject
from policies.kubernetes._pods import WORKLOADS, containers, resources, workload

REQUIRED = (("requests", "cpu"), ("requests", "memory"), ("limits", "cpu"), ("limits", "memory"))


def check(subject: Subject, context: Context) -> Iterator[str]:
    for container in containers(subject):
        missing = [f"{section}.{name}" for section, name in REQUIRED
                   if name not in resources(container, section)]
        if missing:
            yield f"{workload(subject)}: {container.label} has no {', '.join(missing)}"


RULE = Rule(
    name="kubernetes-workload-require-resource-requests-and-limits",
    description="Every container, init containers included, sets cpu and memory requests and "
                "limits.",
    severity="medium",
    rationale="Without requests the scheduler overpacks nodes; without limits one pod can "
              "starve its neighbours or take the node's memory.",
    remediation="Set resources.requests and resources.limits for cpu and memory on every "
                "container.",
    resource_types=WORKLOADS,
    check_resource=check,
    tags=("reliability", "cost"),
)
