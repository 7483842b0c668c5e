"""kubernetes-karpenter-k8s-aws-v1-ec2nodeclass-require-encrypted-volumes: node disks, the root
volume first, are encrypted.

Left out, ``blockDeviceMappings`` defaults to Karpenter's encrypted gp3 volumes for the AMI
family (AL2/AL2023: /dev/xvda; Bottlerocket: /dev/xvda and /dev/xvdb). Given, it replaces
them: every volume it maps must set ``encrypted``, and a root device it leaves out comes from
the AMI's own mapping, encrypted only if the account's EBS default is on.
"""

from __future__ import annotations

from collections.abc import Iterator

from policies.core import Context, Rule, Subject, as_list, as_map, truthy
from policies.kubernetes._karpenter import EC2_NODE_CLASS, object_name, spec

# The device each AMI family boots from (Karpenter's amiFamily names).
ROOT_DEVICES = {"AL2": "/dev/xvda", "AL2023": "/dev/xvda", "Bottlerocket": "/dev/xvda",
                "Windows2019": "/dev/sda1", "Windows2022": "/dev/sda1"}
_ALIASES = {family.lower(): family for family in ROOT_DEVICES}


def ami_family(node_class: Subject) -> str | None:
    """``spec.amiFamily``, else the family of an ``alias`` AMI selector (``al2023@latest``)."""
    family = spec(node_class).get("amiFamily")
    if family:
        return str(family)
    for term in map(as_map, as_list(spec(node_class).get("amiSelectorTerms"))):
        alias = str(term.get("alias") or "").split("@", 1)[0].lower()
        if alias in _ALIASES:
            return _ALIASES[alias]
    return None


def check(subject: Subject, context: Context) -> Iterator[str]:
    name = object_name(subject)
    family = ami_family(subject)
    root = ROOT_DEVICES.get(family or "")
    mappings = list(map(as_map, as_list(spec(subject).get("blockDeviceMappings"))))
    if not mappings:
        if root is None:
            yield (f"EC2NodeClass {name} maps no block devices and Karpenter has no default "
                   f"volumes for AMI family {family or 'unknown'}, so encryption is left to the "
                   "AMI and the account default")
        return
    for mapping in mappings:
        if not truthy(as_map(mapping.get("ebs")).get("encrypted")):
            yield (f"EC2NodeClass {name} leaves {mapping.get('deviceName')} unencrypted "
                   "(ebs.encrypted is not true)")
    if root and root not in {m.get("deviceName") for m in mappings}:
        yield (f"EC2NodeClass {name} maps no root device ({root} for {family}), so the root "
               "volume comes from the AMI, encrypted only if the account default is on")


RULE = Rule(
    name="kubernetes-karpenter-k8s-aws-v1-ec2nodeclass-require-encrypted-volumes",
    description="EC2NodeClasses give their nodes encrypted EBS volumes, the root volume "
                "included.",
    severity="high",
    rationale="Node volumes hold image layers, model files and compiled engines; unencrypted "
              "they leak with any snapshot.",
    remediation="Map the root device (/dev/xvda; Bottlerocket: /dev/xvda and its data volume "
                "/dev/xvdb) in spec.blockDeviceMappings with ebs encrypted: true (gp3), or "
                "leave blockDeviceMappings out for Karpenter's encrypted defaults.",
    resource_types=(EC2_NODE_CLASS,),
    check_resource=check,
    tags=("security", "encryption"),
)
