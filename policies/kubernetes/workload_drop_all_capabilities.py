"""kubernetes-workload-drop-all-capabilities: containers start with no Linux capabilities."""

from __future__ import annotations

from collections.abc import Iterator

from policies.core import Context, Rule, Subject, as_list, as_map
from policies.kubernetes._pods import WORKLOADS, containers, security, workload

ALLOWED_ADDS = frozenset({"NET_BIND_SERVICE"})


def check(subject: Subject, context: Context) -> Iterator[str]:
    for container in containers(subject):
        capabilities = as_map(security(container).get("capabilities"))
        if "ALL" not in as_list(capabilities.get("drop")):
            yield (f"{workload(subject)}: {container.label} keeps the runtime's default "
                   "capabilities (capabilities.drop lacks ALL)")
        added = [str(c) for c in as_list(capabilities.get("add")) if c not in ALLOWED_ADDS]
        if added:
            yield f"{workload(subject)}: {container.label} adds capabilities {', '.join(added)}"


RULE = Rule(
    name="kubernetes-workload-drop-all-capabilities",
    description="Containers drop every Linux capability and add none back (but "
                "NET_BIND_SERVICE).",
    severity="medium",
    rationale="The runtime's default capabilities (NET_RAW, CHOWN, SETUID, ...) are more than a "
              "model server needs and widen what an exploit can do.",
    remediation="Set securityContext.capabilities.drop: [ALL]; add back only NET_BIND_SERVICE, "
                "and only for a port below 1024.",
    resource_types=WORKLOADS,
    check_resource=check,
    tags=("security", "pod-security-standards"),
)
