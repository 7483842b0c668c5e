"""aws-eks-nodegroup-require-encrypted-volumes: node disks are encrypted.

The GPU pools are Karpenter's (kubernetes-karpenter-k8s-aws-v1-ec2nodeclass-require-encrypted-
volumes); this covers the managed node groups (the system pool) and their launch templates.
"""

from __future__ import annotations

from collections.abc import Iterator

from policies.aws._launch_templates import DEFAULT_TEMPLATE, launch_templates
from policies.aws._types import NODE_GROUP
from policies.core import Context, Finding, Rule, Stack, as_list, as_map, truthy


def check(stack: Stack, context: Context) -> Iterator[Finding]:
    for group in stack.of_type(NODE_GROUP):
        templates = launch_templates(stack, group)
        if not templates:
            yield Finding(f"node group {group.name} {DEFAULT_TEMPLATE}, whose volumes are "
                          "encrypted only if the account default is on", group)
        for template in templates:
            mappings = list(map(as_map, as_list(template.props.get("blockDeviceMappings"))))
            if not mappings:
                yield Finding(f"node group {group.name}: launch template {template.name} maps "
                              "no block devices, so encryption is left to the account default",
                              group)
            for mapping in mappings:
                if not truthy(as_map(mapping.get("ebs")).get("encrypted")):
                    yield Finding(f"node group {group.name}: launch template {template.name} "
                                  f"leaves {mapping.get('deviceName')} unencrypted", group)


RULE = Rule(
    name="aws-eks-nodegroup-require-encrypted-volumes",
    description="Node groups start from a launch template whose EBS volumes are encrypted.",
    severity="high",
    rationale="Node volumes hold image layers, model files and compiled engines; unencrypted "
              "they leak with any snapshot.",
    remediation="Map the root device in the launch template with ebs encrypted='true' (gp3).",
    resource_types=(NODE_GROUP,),
    check_stack=check,
    tags=("security", "encryption"),
)
