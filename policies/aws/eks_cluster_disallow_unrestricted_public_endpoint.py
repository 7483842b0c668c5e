"""aws-eks-cluster-disallow-unrestricted-public-endpoint: prod's API is not open to all."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from infra.config import OPERATOR_SET
from policies.aws._types import EKS_CLUSTER
from policies.core import Context, Rule, Subject, as_list

AWS_DEFAULT_CIDRS = ["0.0.0.0/0"]


def _too_broad(cidr: str, widest_prefix: int) -> bool:
    try:
        return ipaddress.ip_network(cidr, strict=False).prefixlen < widest_prefix
    except ValueError:
        return True  # unparsable: treat as open


def check(subject: Subject, context: Context) -> Iterator[str]:
    if subject.get("vpcConfig.endpointPublicAccess", True) is False:
        return
    cidrs = [str(c) for c in as_list(subject.get("vpcConfig.publicAccessCidrs"))]
    cidrs = cidrs or AWS_DEFAULT_CIDRS
    # Offline, the account's networks are a stand-in: the real preview judges them.
    cidrs = [c for c in cidrs if c != OPERATOR_SET]
    open_to = [c for c in cidrs if _too_broad(c, int(context.settings["widestPrefix"]))]
    if open_to:
        yield (f"EKS cluster {subject.name} exposes its API endpoint publicly to "
               f"{', '.join(open_to)}")


RULE = Rule(
    name="aws-eks-cluster-disallow-unrestricted-public-endpoint",
    description="In prod, the EKS API endpoint is private or limited to known networks.",
    severity="critical",
    rationale="An open endpoint leaves the Kubernetes API one leaked credential or API flaw "
              "away from the whole internet.",
    remediation="Set endpointPublicAccess: false (reach the API from the VPC) or list only "
                "known networks in publicAccessCidrs.",
    resource_types=(EKS_CLUSTER,),
    check_resource=check,
    environments=frozenset({"prod"}),
    config_schema={"widestPrefix": {
        "type": "integer", "minimum": 0, "maximum": 32, "default": 8,
        "description": "public CIDRs shorter than this prefix count as unrestricted"}},
    tags=("security", "network"),
)
