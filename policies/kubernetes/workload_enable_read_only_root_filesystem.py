"""kubernetes-workload-enable-read-only-root-filesystem: containers cannot write their image."""

from __future__ import annotations

from collections.abc import Iterator

from policies.core import Context, Rule, Subject
from policies.kubernetes._pods import WORKLOADS, containers, security, workload


def check(subject: Subject, context: Context) -> Iterator[str]:
    for container in containers(subject):
        if security(container).get("readOnlyRootFilesystem") is not True:
            yield (f"{workload(subject)}: {container.label} has a writable root filesystem "
                   "(readOnlyRootFilesystem is not true)")


RULE = Rule(
    name="kubernetes-workload-enable-read-only-root-filesystem",
    description="Containers mount their root filesystem read-only.",
    severity="medium",
    rationale="A writable root lets a compromised process replace the binaries and libraries "
              "the server loads.",
    remediation="Set securityContext.readOnlyRootFilesystem: true and mount an emptyDir where "
                "the process must write (/tmp, caches).",
    resource_types=WORKLOADS,
    check_resource=check,
    tags=("security", "pod-security-standards"),
)
