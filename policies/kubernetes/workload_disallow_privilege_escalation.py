"""kubernetes-workload-disallow-privilege-escalation: no setuid gains, no privileged mode."""

from __future__ import annotations

from collections.abc import Iterator

from policies.core import Context, Rule, Subject
from policies.kubernetes._pods import WORKLOADS, containers, security, workload


def check(subject: Subject, context: Context) -> Iterator[str]:
    for container in containers(subject):
        settings = security(container)
        if settings.get("privileged") is True:
            yield f"{workload(subject)}: {container.label} runs privileged (privileged: true)"
        if settings.get("allowPrivilegeEscalation") is not False:
            yield (f"{workload(subject)}: {container.label} allows privilege escalation "
                   "(allowPrivilegeEscalation is not false)")


RULE = Rule(
    name="kubernetes-workload-disallow-privilege-escalation",
    description="Containers cannot gain privileges (allowPrivilegeEscalation: false, not "
                "privileged).",
    severity="high",
    rationale="Setuid binaries and privileged mode let a process gain rights it did not start "
              "with, up to the node's.",
    remediation="Set securityContext.allowPrivilegeEscalation: false and leave privileged unset.",
    resource_types=WORKLOADS,
    check_resource=check,
    tags=("security", "pod-security-standards"),
)
