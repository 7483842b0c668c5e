"""Pricing of compute: the EKS control plane, node groups, Karpenter NodePools, capacity
reservations, and EC2 instances and EBS volumes outside them.

How many nodes a GPU NodePool runs (Karpenter keeps none of its own):

- max: the pool's ``maxNodes``, which its ``limits`` allow;
- min and expected: the serving replicas (``serving.minReplicas``; the usage file's
  ``expected_replicas`` for the serving Deployment, else the minimum) times the GPUs a pod
  asks for, placed as Karpenter's weights do: reserved pools first, then spot, then
  on-demand, each up to its ``maxNodes``, on its smallest allowed node.

How node groups and NodePools are priced:

- on-demand: EKS launches on-demand capacity in the listed order (prioritized), so every
  column uses the first instance type;
- spot: capacity-optimized allocation spreads over the listed types, so *expected* uses the
  mean of their spot prices, *min* the cheapest and *max* the dearest;
- reserved: the pool's reserved term (``reservedTerm`` in the stack config) at the
  no-upfront effective hourly rate. A capacity reservation for the pool is billed in full
  (its instance count, all month) at that rate; the node group then adds only the nodes
  beyond the reservation, at the on-demand rate. No double counting.
- every node's gp3 root volume comes from its launch template.
"""

from __future__ import annotations

import math

from infra.catalog import catalog as instance_catalog
from infra.catalog import eks_versions
from infra.config import StackConfig
from infra.cost.model import PoolCost, Range
from infra.cost.pricer import PricerBase
from infra.render import Resource

# Karpenter's NodePool weights, by capacity: the order pools fill in.
FILL_ORDER = ("reserved", "spot", "on-demand")


def place_replicas(config: StackConfig, replicas: int) -> dict[str, int]:
    """Nodes per GPU pool for ``replicas`` serving pods, filled as Karpenter's weights do."""
    per_pod = config.serving.gpus_per_pod
    placed: dict[str, int] = {}
    left = replicas
    for capacity in FILL_ORDER:
        for pool in (p for p in config.gpu_pools if p.capacity == capacity):
            pods_per_node = pool.gpus_per_node // per_pod if per_pod else 0
            nodes = min(pool.max_nodes, math.ceil(left / pods_per_node)) if (
                pods_per_node and left > 0) else 0
            placed[pool.name] = nodes
            left -= nodes * pods_per_node
    return placed


class ComputePricer(PricerBase):
    """Prices the EKS control plane and EC2 capacity: node groups, reservations, instances."""

    def eks_cluster(self, r: Resource) -> None:
        """Standard support, or the extended rate once the version has left standard support
        on the catalogue's date and the cluster stays (support type EXTENDED, EKS's
        default); with STANDARD, EKS upgrades the cluster instead."""
        version = str(r.inputs.get("version", ""))
        support = (r.inputs.get("upgradePolicy") or {}).get("supportType") or "EXTENDED"
        window = eks_versions().versions.get(version)
        on = max(price.date for price in self.cat.prices.values())
        if window is not None and window.end_of_standard < on and support != "STANDARD":
            self.add(r, "hours", f"EKS control plane, extended support ({version} left "
                     f"standard support {window.end_of_standard})", "hour",
                     self.monthly_hours(), ["eks/cluster/extended"])
            return
        self.add(r, "hours", "EKS control plane, standard support", "hour",
                 self.monthly_hours(), ["eks/cluster/standard"])

    # node groups
    def _capacity(self, r: Resource) -> str:
        tag = (r.inputs.get("tags") or {}).get("aiinfra.io/capacity")
        if tag in ("reserved", "spot", "on-demand"):
            return tag
        return "spot" if r.inputs.get("capacityType") == "SPOT" else "on-demand"

    def _node_price(self, types: list[str], capacity: str,
                    term: str | None) -> tuple[Range | None, list[str], str]:
        if capacity == "spot":
            keys = [f"ec2/spot/{t}" for t in types]
            prices = [self.cat.usd(k) for k in keys]
            if any(p is None for p in prices):
                return None, keys, ""
            return (Range(min(prices), sum(prices) / len(prices), max(prices)), keys,
                    f"mean of {len(types)} types" if len(types) > 1 else "")
        if capacity == "reserved":
            if term is None:
                return None, [], "reserved pool without reservedTerm"
            key = f"ec2/reserved-{term}/{types[0]}"
            usd = self.cat.usd(key)
            return (Range.of(usd) if usd is not None else None), [key], f"{term} no upfront"
        key = f"ec2/on-demand/{types[0]}"
        usd = self.cat.usd(key)
        return (Range.of(usd) if usd is not None else None), [key], ""

    def node_group(self, r: Resource) -> None:
        scaling = r.inputs.get("scalingConfig") or {}
        nodes = Range(float(scaling.get("minSize", 0)), float(scaling.get("desiredSize", 0)),
                      float(scaling.get("maxSize", 0)))
        types = list(r.inputs.get("instanceTypes") or ["t3.medium"])
        pool = (r.inputs.get("labels") or {}).get("aiinfra.io/pool") or \
            (r.inputs.get("tags") or {}).get("aiinfra.io/pool")
        self._nodes(r, pool, types, self._capacity(r), nodes)
        self._root_volumes(r, nodes)

    def node_pool(self, r: Resource) -> None:
        spec = r.inputs.get("spec") or {}
        template = spec.get("template") or {}
        pool = ((template.get("metadata") or {}).get("labels") or {}).get("aiinfra.io/pool")
        pool_config = self.pool_configs.get(pool)
        if pool_config is None:
            self.unpriced(r, "instances", "a NodePool of no GPU pool in the stack config",
                          item="instances")
            return
        config = self.graph.config
        expected = self.usage.value("kubernetes:apps/v1:Deployment",
                                    f"{self.prefix}serving-deployment",
                                    "expected_replicas") if self.usage else None
        expected = int(expected) if expected is not None else config.serving.min_replicas
        low = place_replicas(config, config.serving.min_replicas)[pool]
        mid = place_replicas(config, expected)[pool]
        nodes = Range(float(low), float(mid), float(pool_config.max_nodes))
        derived = (f"nodes: {config.serving.min_replicas} / {expected} replicas × "
                   f"{config.serving.gpus_per_pod} GPU placed reserved → spot → on-demand; "
                   f"max {pool_config.max_nodes} (limits)")
        self._nodes(r, pool, list(pool_config.instance_types), pool_config.capacity, nodes,
                    derived=derived)
        node_class = next((c for c in self.graph.of_type(
            "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass")
            if (c.inputs.get("metadata") or {}).get("name") == (
                template.get("spec") or {}).get("nodeClassRef", {}).get("name")), None)
        for mapping in ((node_class.inputs.get("spec") or {}).get("blockDeviceMappings") or []
                        if node_class else []):
            ebs = mapping.get("ebs") or {}
            size = float(str(ebs.get("volumeSize", "0")).removesuffix("Gi"))
            volume_type = ebs.get("volumeType", "gp3")
            self.add(r, f"storage-{volume_type}",
                     f"root volume {size:g} GB {volume_type} per node", "gb-month",
                     nodes.map(lambda n, s=size: n * s), [f"ebs/storage/{volume_type}"])

    def _nodes(self, r: Resource, pool: str | None, types: list[str], capacity: str,
               nodes: Range, derived: str = "") -> None:
        """The instance line of a node group or NodePool, and its GPU pool figures."""
        pool_config = self.pool_configs.get(pool) if pool else None
        term = pool_config.reserved_term if pool_config else None
        node_hourly, keys, how = self._node_price(types, capacity, term)
        covered = 0.0
        reservations = self.reservations.get(pool, []) if pool else []
        if capacity == "reserved":
            covered = float(sum(int(o.inputs.get("instanceCount", 0)) for o in reservations))
        label = types[0] if len(types) == 1 else f"{types[0]} +{len(types) - 1}"
        if covered:
            extra = nodes.map(lambda n: max(0.0, n - covered))
            od_key = f"ec2/on-demand/{types[0]}"
            od = self.cat.usd(od_key)
            names = ", ".join(o.name for o in reservations)
            self.add(r, "instances", f"{label} on-demand, beyond the reservation",
                     "hour", extra.map(lambda n: n * self.hours), [od_key],
                     Range.of(od) if od is not None else None,
                     note="; ".join(filter(None, [
                         f"{covered:g} node(s) billed with capacity reservation {names}",
                         derived])))
        else:
            detail = f"{label} {capacity}{' (' + how + ')' if how else ''}"
            self.add(r, "instances", detail, "hour", nodes.map(lambda n: n * self.hours),
                     keys, node_hourly,
                     note="; ".join(filter(None, [
                         "" if node_hourly is not None or keys else how, derived])))
        is_gpu = any(instance_catalog().ec2[t].gpus for t in types
                     if t in instance_catalog().ec2)
        if is_gpu and pool and pool != "system":
            gpus = min((instance_catalog().ec2[t].gpus for t in types
                        if t in instance_catalog().ec2), default=0)
            self.pools.append(PoolCost(pool, capacity, types, nodes, node_hourly, gpus))

    def _root_volumes(self, r: Resource, nodes: Range) -> None:
        template = self.templates.get(r.name)
        if template is None:
            lt = r.inputs.get("launchTemplate") or {}
            template_id = str(lt.get("id", ""))
            template = next((t for name, t in self.templates.items()
                             if template_id in (f"{name}-id", name)), None)
        volumes = []
        if template is not None:
            for mapping in template.inputs.get("blockDeviceMappings") or []:
                ebs = mapping.get("ebs") or {}
                volumes.append((ebs.get("volumeType", "gp2"), float(ebs.get("volumeSize", 0))))
        elif r.inputs.get("diskSize"):
            volumes.append(("unknown", float(r.inputs["diskSize"])))
        for volume_type, size in volumes:
            key = f"ebs/storage/{volume_type}"
            self.add(r, f"storage-{volume_type}", f"root volume {size:g} GB {volume_type} per node",
                     "gb-month", nodes.map(lambda n, s=size: n * s), [key])

    def capacity_reservation(self, r: Resource) -> None:
        count = float(r.inputs.get("instanceCount", 0))
        instance_type = r.inputs.get("instanceType", "")
        pool = (r.inputs.get("tags") or {}).get("aiinfra.io/pool")
        pool_config = self.pool_configs.get(pool) if pool else None
        if pool_config is not None and pool_config.capacity == "reserved":
            term = pool_config.reserved_term
            key = f"ec2/reserved-{term}/{instance_type}"
            how = f"reserved {term} no upfront"
        else:  # a reservation without reserved instances is billed at the on-demand rate
            key = f"ec2/on-demand/{instance_type}"
            how = "on-demand rate"
        self.add(r, "instances", f"{count:g} × {instance_type} all month, {how}",
                 "hour", self.monthly_hours(count), [key])

    # instances and volumes outside node groups
    def ec2_instance(self, r: Resource) -> None:
        instance_type = r.inputs.get("instanceType", "")
        self.add(r, "instances", f"{instance_type} (on-demand)", "hour", self.monthly_hours(),
                 [f"ec2/on-demand/{instance_type}"])

    def ebs_volume(self, r: Resource) -> None:
        volume_type = r.inputs.get("type", "gp3")
        size = float(r.inputs.get("size", 0))
        self.add(r, "storage", f"{size:g} GB {volume_type}", "gb-month", Range.of(size),
                 [f"ebs/storage/{volume_type}"])
