"""aws-eks-nodegroup-require-imdsv2: pods cannot read node credentials from instance metadata.

The GPU pools are Karpenter's (kubernetes-karpenter-k8s-aws-v1-ec2nodeclass-require-imdsv2);
this covers the managed node groups (the system pool) and their launch templates.
"""

from __future__ import annotations

from collections.abc import Iterator

from policies.aws._launch_templates import DEFAULT_TEMPLATE, launch_templates
from policies.aws._types import NODE_GROUP
from policies.core import Context, Finding, Rule, Stack


def check(stack: Stack, context: Context) -> Iterator[Finding]:
    maximum = int(context.settings["maximumHopLimit"])
    for group in stack.of_type(NODE_GROUP):
        templates = launch_templates(stack, group)
        if not templates:
            yield Finding(f"node group {group.name} {DEFAULT_TEMPLATE}, which allows IMDSv1",
                          group)
        for template in templates:
            tokens = template.get("metadataOptions.httpTokens")
            if tokens != "required":
                yield Finding(f"node group {group.name}: launch template {template.name} does "
                              f"not require IMDSv2 (metadataOptions.httpTokens is "
                              f"{tokens or 'unset'})", group)
            hops = int(template.get("metadataOptions.httpPutResponseHopLimit") or 1)
            if hops > maximum:
                yield Finding(f"node group {group.name}: launch template {template.name} lets "
                              "pods reach the instance metadata service "
                              f"(metadataOptions.httpPutResponseHopLimit is {hops}, above "
                              f"{maximum})", group)


RULE = Rule(
    name="aws-eks-nodegroup-require-imdsv2",
    description="Node groups start from a launch template that requires IMDSv2 with a PUT "
                "response hop limit of 1.",
    severity="high",
    rationale="With IMDSv1 any pod that can be made to send an HTTP request (SSRF) reads the "
              "node role's credentials; with a hop limit above 1 every pod can still fetch an "
              "IMDSv2 token and the same credentials, since the extra hop reaches its network "
              "namespace.",
    remediation="Give the node group a launch template with metadata_options "
                "http_tokens='required' and http_put_response_hop_limit=1, and give pods AWS "
                "access through IRSA or Pod Identity.",
    resource_types=(NODE_GROUP,),
    check_stack=check,
    config_schema={"maximumHopLimit": {
        "type": "integer", "minimum": 1, "maximum": 64, "default": 1,
        "description": "largest httpPutResponseHopLimit allowed (1: pods cannot reach IMDS)"}},
    tags=("security",),
)
