"""How many nodes each GPU NodePool runs, read from the rendered graph.

Karpenter keeps no node count of its own, so the preview derives one:

- **max** from the NodePool's ``limits``: for each allowed instance type, the most nodes whose
  GPUs and vCPUs stay within every limit; the max column prices the dearest of them;
- **min** and **expected** from the serving workload: KEDA's ``minReplicaCount`` (min) and the
  usage file's ``expected_replicas`` (expected, else the minimum) times the GPUs a serving pod
  asks for, placed as Karpenter's weights do: the NodePool of highest ``weight`` first
  (reserved 100, spot 50, on-demand 10), each up to its limits, on nodes of its cheapest
  allowed instance type.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from infra.catalog import catalog as instance_catalog
from infra.render import Graph, Resource

NODEPOOL = "kubernetes:karpenter.sh/v1:NodePool"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
GPU = "nvidia.com/gpu"


@dataclass(frozen=True)
class Workload:
    """The serving Deployment's replicas (KEDA's bounds and the expected count) and GPUs."""

    min_replicas: int
    expected_replicas: int
    max_replicas: int
    gpus_per_pod: int
    expected_from: str

    def describe(self) -> str:
        return (f"KEDA min {self.min_replicas} / expected {self.expected_replicas} "
                f"({self.expected_from}) / max {self.max_replicas} replicas × "
                f"{self.gpus_per_pod} GPU")


def _quantity(value: object) -> float:
    text = str(value).strip()
    if text.endswith("m"):
        return float(text[:-1]) / 1000
    return float(text)


def serving_workload(graph: Graph, expected: float | None) -> Workload:
    """The workload behind the GPU NodePools: the ScaledObject of the Deployment asking for
    GPUs (the stack config where the graph holds none, e.g. a hand-built one)."""
    deployments = {(r.inputs.get("metadata") or {}).get("name"): r
                   for r in graph.of_type("kubernetes:apps/v1:Deployment")}
    serving = graph.config.serving
    low, high, gpus = serving.min_replicas, serving.max_replicas, serving.gpus_per_pod
    for scaled in graph.of_type(SCALED_OBJECT):
        spec = scaled.inputs.get("spec") or {}
        target = deployments.get((spec.get("scaleTargetRef") or {}).get("name"))
        pod_gpus = _pod_gpus(target) if target is not None else 0
        if pod_gpus:
            low = int(spec.get("minReplicaCount", 0))
            high = int(spec.get("maxReplicaCount", low))
            gpus = pod_gpus
            break
    want = int(expected) if expected is not None else low
    return Workload(low, max(low, min(want, high)), high, gpus,
                    "usage file" if expected is not None else "= min, no usage figure")


def _pod_gpus(deployment: Resource) -> int:
    containers = (((deployment.inputs.get("spec") or {}).get("template") or {})
                  .get("spec") or {}).get("containers") or []
    total = 0
    for container in containers:
        resources = container.get("resources") or {}
        asked = (resources.get("limits") or {}).get(GPU) or \
            (resources.get("requests") or {}).get(GPU)
        total += int(_quantity(asked)) if asked is not None else 0
    return total


@dataclass(frozen=True)
class NodePoolShape:
    """A NodePool as the graph renders it: what it may launch, in which order, how much."""

    resource: Resource
    pool: str
    weight: int
    instance_types: tuple[str, ...]
    capacity_types: tuple[str, ...]
    limits: dict[str, float]

    @classmethod
    def of(cls, r: Resource) -> NodePoolShape:
        spec = r.inputs.get("spec") or {}
        template = spec.get("template") or {}
        labels = (template.get("metadata") or {}).get("labels") or {}
        requirements = {req.get("key"): tuple(req.get("values") or [])
                        for req in (template.get("spec") or {}).get("requirements") or []
                        if req.get("operator") == "In"}
        return cls(r, labels.get("aiinfra.io/pool", r.name), int(spec.get("weight", 0)),
                   requirements.get("node.kubernetes.io/instance-type", ()),
                   requirements.get("karpenter.sh/capacity-type", ("on-demand",)),
                   {k: _quantity(v) for k, v in (spec.get("limits") or {}).items()})

    def nodes_within_limits(self, instance_type: str) -> int | None:
        """The most nodes of ``instance_type`` the limits allow (None: no limit, no GPU)."""
        spec = instance_catalog().ec2.get(instance_type)
        if spec is None or not spec.gpus:
            return None
        per_node = {GPU: spec.gpus, "cpu": spec.vcpu, "memory": spec.memory_gib * 2**30}
        bounds = [math.floor(limit / per_node[key]) for key, limit in self.limits.items()
                  if key in per_node]
        return min(bounds) if bounds else None

    def limits_text(self) -> str:
        return ", ".join(f"{k}={v:g}" for k, v in sorted(self.limits.items()))


def fill(replicas: int, pools: list[tuple[str, int, int]]) -> dict[str, int]:
    """Nodes per pool for ``replicas`` pods; ``pools`` are (name, pods per node, most nodes)
    in the order Karpenter tries them."""
    placed: dict[str, int] = {}
    left = replicas
    for name, pods_per_node, most in pools:
        nodes = min(most, math.ceil(left / pods_per_node)) if pods_per_node and left > 0 else 0
        placed[name] = nodes
        left -= nodes * pods_per_node
    return placed
