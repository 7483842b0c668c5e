"""kubernetes-workload-disallow-host-namespaces: pods keep their own network, PIDs and IPC."""

from __future__ import annotations

from collections.abc import Iterator

from policies.core import Context, Rule, Subject
from policies.kubernetes._pods import WORKLOADS, pod_spec, workload

HOST_NAMESPACES = ("hostNetwork", "hostPID", "hostIPC")


def check(subject: Subject, context: Context) -> Iterator[str]:
    shared = [key for key in HOST_NAMESPACES if pod_spec(subject).get(key) is True]
    if shared:
        yield f"{workload(subject)}: shares the node's namespaces ({', '.join(shared)})"


RULE = Rule(
    name="kubernetes-workload-disallow-host-namespaces",
    description="Pods do not share the node's network, process or IPC namespaces.",
    severity="high",
    rationale="Host namespaces expose the node's network stack and processes to the pod.",
    remediation="Remove hostNetwork, hostPID and hostIPC from the pod spec.",
    resource_types=WORKLOADS,
    check_resource=check,
    tags=("security", "pod-security-standards"),
)
