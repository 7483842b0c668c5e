"""aws-eks-cluster-enable-control-plane-logging: the control plane leaves an audit trail."""

from __future__ import annotations

from collections.abc import Iterator

from policies.aws._types import EKS_CLUSTER
from policies.core import Context, Rule, Subject, as_list


def check(subject: Subject, context: Context) -> Iterator[str]:
    enabled = set(map(str, as_list(subject.props.get("enabledClusterLogTypes"))))
    missing = [kind for kind in context.settings["requiredLogTypes"] if kind not in enabled]
    if missing:
        yield (f"EKS cluster {subject.name} does not send {', '.join(missing)} logs "
               "(enabledClusterLogTypes)")


RULE = Rule(
    name="aws-eks-cluster-enable-control-plane-logging",
    description="EKS clusters send api, audit and authenticator logs to CloudWatch.",
    severity="medium",
    rationale="Without audit and authenticator logs nobody can tell who changed what in the "
              "cluster, or how.",
    remediation="Set enabled_cluster_log_types to include api, audit and authenticator "
                "(controllerManager and scheduler help debugging).",
    resource_types=(EKS_CLUSTER,),
    check_resource=check,
    config_schema={"requiredLogTypes": {
        "type": "array", "items": {"type": "string"},
        "default": ["api", "audit", "authenticator"],
        "description": "control-plane log types that must be enabled"}},
    tags=("security", "audit"),
)
