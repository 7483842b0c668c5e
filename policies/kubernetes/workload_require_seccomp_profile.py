"""kubernetes-workload-require-seccomp-profile: syscalls are filtered (RuntimeDefault)."""

from __future__ import annotations

from collections.abc import Iterator

from policies.core import Context, Rule, Subject, as_map
from policies.kubernetes._pods import WORKLOADS, containers, effective, workload

FILTERING = ("RuntimeDefault", "Localhost")


def check(subject: Subject, context: Context) -> Iterator[str]:
    for container in containers(subject):
        profile = as_map(effective(subject, container, "seccompProfile")).get("type")
        if profile not in FILTERING:
            yield (f"{workload(subject)}: {container.label} runs without a seccomp profile "
                   f"(seccompProfile.type is {profile or 'unset'})")


RULE = Rule(
    name="kubernetes-workload-require-seccomp-profile",
    description="Containers run under the RuntimeDefault (or a Localhost) seccomp profile.",
    severity="medium",
    rationale="Without seccomp every syscall reaches the kernel, including those container "
              "escapes rely on.",
    remediation="Set securityContext.seccompProfile.type: RuntimeDefault on the pod.",
    resource_types=WORKLOADS,
    check_resource=check,
    tags=("security", "pod-security-standards"),
)
