"""kubernetes-karpenter-k8s-aws-v1-ec2nodeclass-require-imdsv2: pods cannot read the node
role's credentials from instance metadata.

Karpenter's defaults (metadataOptions left out, or a field of it) are the secure ones:
httpTokens required, httpPutResponseHopLimit 1. A hop limit of 1 keeps IMDSv2's token
response from crossing the extra hop into a pod's network namespace, so only host-network
processes (kubelet, the VPC CNI) reach the instance metadata service; pods get AWS credentials
from IRSA or Pod Identity instead. ``maximumHopLimit`` allows 2 for clusters that still need
pods to read it.
"""

from __future__ import annotations

from collections.abc import Iterator

from policies.core import Context, Rule, Subject, as_map
from policies.kubernetes._karpenter import EC2_NODE_CLASS, object_name, spec

HOP_LIMIT = {"type": "integer", "minimum": 1, "maximum": 64, "default": 1,
             "description": "largest httpPutResponseHopLimit allowed (1: pods cannot reach "
                            "IMDS)"}


def check(subject: Subject, context: Context) -> Iterator[str]:
    options = as_map(spec(subject).get("metadataOptions"))
    if options.get("httpEndpoint") == "disabled":
        return  # no instance metadata service at all
    name = object_name(subject)
    tokens = options.get("httpTokens", "required")
    if tokens != "required":
        yield (f"EC2NodeClass {name} does not require IMDSv2 (metadataOptions.httpTokens is "
               f"{tokens})")
    hops = int(options.get("httpPutResponseHopLimit", 1))
    maximum = int(context.settings["maximumHopLimit"])
    if hops > maximum:
        yield (f"EC2NodeClass {name} lets pods reach the instance metadata service "
               f"(metadataOptions.httpPutResponseHopLimit is {hops}, above {maximum})")


RULE = Rule(
    name="kubernetes-karpenter-k8s-aws-v1-ec2nodeclass-require-imdsv2",
    description="EC2NodeClasses require IMDSv2 (httpTokens: required) with a PUT response hop "
                "limit of 1.",
    severity="high",
    rationale="With IMDSv1 any pod that can be made to send an HTTP request (SSRF) reads the "
              "node role's credentials; with a hop limit above 1 every pod can still fetch an "
              "IMDSv2 token and the same credentials, since the extra hop reaches its network "
              "namespace.",
    remediation="Set spec.metadataOptions httpTokens: required and httpPutResponseHopLimit: 1 "
                "(Karpenter's defaults), and give pods AWS access through IRSA or Pod Identity.",
    resource_types=(EC2_NODE_CLASS,),
    check_resource=check,
    config_schema={"maximumHopLimit": HOP_LIMIT},
    tags=("security",),
)
