"""Karpenter v1 objects (NodePool, EC2NodeClass, its Helm release) and the questions the
Karpenter rules ask of them, with Karpenter's own defaults where a field is left out."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from policies.core import Subject, as_list, as_map

NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
EC2_NODE_CLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
SQS_QUEUE = "aws:sqs/queue:Queue"

GPU = "nvidia.com/gpu"
INSTANCE_TYPE = "node.kubernetes.io/instance-type"
CAPACITY_TYPE = "karpenter.sh/capacity-type"
CAPACITY_TYPES = frozenset({"reserved", "on-demand", "spot"})
# A NodePool that names no capacity type launches on-demand only (Karpenter's default).
DEFAULT_CAPACITY_TYPES = frozenset({"on-demand"})
# consolidationPolicy when the NodePool leaves it out (the CRD's default).
DEFAULT_CONSOLIDATION = "WhenEmptyOrUnderutilized"
_GPU_FAMILY = re.compile(r"^(g\d|p\d)")
_GPU_LABEL_KEYS = ("karpenter.k8s.aws/instance-gpu-name",
                   "karpenter.k8s.aws/instance-gpu-manufacturer",
                   "karpenter.k8s.aws/instance-gpu-memory")


def object_name(subject: Subject) -> str:
    """``metadata.name`` (the name Kubernetes knows), else the Pulumi resource name."""
    return str(as_map(subject.props.get("metadata")).get("name") or subject.name)


def spec(subject: Subject) -> Mapping[str, Any]:
    return as_map(subject.props.get("spec"))


def template_spec(pool: Subject) -> Mapping[str, Any]:
    return as_map(as_map(spec(pool).get("template")).get("spec"))


def requirements(pool: Subject, key: str) -> list[Mapping[str, Any]]:
    return [r for r in map(as_map, as_list(template_spec(pool).get("requirements")))
            if r.get("key") == key]


def allowed(pool: Subject, key: str, universe: frozenset[str] | None = None,
            default: frozenset[str] | None = None) -> frozenset[str] | None:
    """The values ``key`` may take on the pool's nodes, its requirements ANDed (In, NotIn,
    Exists, DoesNotExist) within ``universe``; ``default`` when none names the key; None when
    nothing bounds them."""
    found = requirements(pool, key)
    if not found:
        return default if default is not None else universe
    if any(r.get("operator") == "DoesNotExist" for r in found):
        return frozenset()

    def listed(operator: str) -> list[frozenset[str]]:
        return [frozenset(map(str, as_list(r.get("values")))) for r in found
                if r.get("operator") == operator]

    values = frozenset.intersection(*listed("In")) if listed("In") else universe
    if values is None:
        return None
    return values.difference(*listed("NotIn"))


def capacity_types(pool: Subject) -> frozenset[str]:
    return allowed(pool, CAPACITY_TYPE, CAPACITY_TYPES, DEFAULT_CAPACITY_TYPES) or frozenset()


def instance_types(pool: Subject) -> list[str] | None:
    """The instance types the pool may launch, in the order listed; None when no ``In``
    requirement bounds them (Karpenter then picks from every type the others allow)."""
    values = allowed(pool, INSTANCE_TYPE)
    if values is None:
        return None
    listed = [str(v) for r in requirements(pool, INSTANCE_TYPE) if r.get("operator") == "In"
              for v in as_list(r.get("values"))]
    return list(dict.fromkeys(v for v in listed if v in values))


def is_gpu_instance_type(instance_type: str) -> bool:
    """From the catalogue (infra/data/instances.yaml), else by the g*/p* family name."""
    from infra.catalog import catalog  # noqa: PLC0415 - data, read once

    known = catalog().ec2
    if instance_type in known:
        return bool(known[instance_type].gpus)
    return bool(_GPU_FAMILY.match(instance_type))


def is_gpu_node_pool(pool: Subject) -> bool:
    """GPU labels or limits, or requirements that only allow GPU instances (by type, family,
    category, GPU count, name or manufacturer)."""
    labels = as_map(as_map(as_map(spec(pool).get("template")).get("metadata")).get("labels"))
    if str(labels.get(f"{GPU}.present", "")).lower() == "true" or GPU in as_map(
            spec(pool).get("limits")):
        return True
    types = instance_types(pool)
    if types and all(map(is_gpu_instance_type, types)):
        return True
    families = allowed(pool, "karpenter.k8s.aws/instance-family")
    if families and all(_GPU_FAMILY.match(f) for f in families):
        return True
    categories = allowed(pool, "karpenter.k8s.aws/instance-category")
    if categories and categories <= {"g", "p"}:
        return True
    for requirement in requirements(pool, "karpenter.k8s.aws/instance-gpu-count"):
        values = [str(v) for v in as_list(requirement.get("values"))]
        operator = requirement.get("operator")
        if (operator == "Exists" or (operator in ("Gt", "Gte") and values
                                     and int(values[0]) >= (0 if operator == "Gt" else 1))
                or (operator == "In" and values and "0" not in values)):
            return True
    return any(r.get("operator") in ("In", "Exists")
               for key in _GPU_LABEL_KEYS for r in requirements(pool, key))


def weight(pool: Subject) -> int:
    return int(spec(pool).get("weight") or 0)


def is_karpenter_release(release: Subject) -> bool:
    chart = str(release.props.get("chart") or "").rstrip("/")
    return chart.rsplit("/", 1)[-1] == "karpenter"
