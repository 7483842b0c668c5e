"""aws-eks-nodegroup-require-imdsv2: pods cannot read node credentials with a plain GET."""

from __future__ import annotations

from collections.abc import Iterator

from policies.aws._launch_templates import DEFAULT_TEMPLATE, launch_templates
from policies.aws._types import NODE_GROUP
from policies.core import Context, Finding, Rule, Stack


def check(stack: Stack, context: Context) -> Iterator[Finding]:
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


RULE = Rule(
    name="aws-eks-nodegroup-require-imdsv2",
    description="Node groups start from a launch template that requires IMDSv2.",
    severity="high",
    rationale="With IMDSv1 any pod that can be made to send an HTTP request (SSRF) reads the "
              "node role's credentials.",
    remediation="Give the node group a launch template with metadata_options "
                "http_tokens='required' and http_put_response_hop_limit=2.",
    resource_types=(NODE_GROUP,),
    check_stack=check,
    tags=("security",),
)
