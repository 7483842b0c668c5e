"""kubernetes-workload-require-run-as-non-root: no container may run as uid 0."""

from __future__ import annotations

from collections.abc import Iterator

from policies.core import Context, Rule, Subject
from policies.kubernetes._pods import WORKLOADS, containers, effective, workload


def check(subject: Subject, context: Context) -> Iterator[str]:
    for container in containers(subject):
        if effective(subject, container, "runAsUser") == 0:
            yield f"{workload(subject)}: {container.label} runs as uid 0 (runAsUser: 0)"
        elif effective(subject, container, "runAsNonRoot") is not True:
            yield (f"{workload(subject)}: {container.label} may run as root "
                   "(runAsNonRoot is not true)")


RULE = Rule(
    name="kubernetes-workload-require-run-as-non-root",
    description="Containers run as a non-root user.",
    severity="high",
    rationale="A root process that escapes its container starts with root on the node.",
    remediation="Set securityContext.runAsNonRoot: true and a non-zero runAsUser on the pod "
                "or the container.",
    resource_types=WORKLOADS,
    check_resource=check,
    tags=("security", "pod-security-standards"),
)
