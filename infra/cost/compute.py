"""Pricing of compute: the EKS control plane, node groups, capacity reservations, and EC2
instances and EBS volumes outside node groups.

How node groups are priced:

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

from infra.catalog import catalog as instance_catalog
from infra.cost.model import PoolCost, Range
from infra.cost.pricer import PricerBase
from infra.render import Resource


class ComputePricer(PricerBase):
    """Prices the EKS control plane and EC2 capacity: node groups, reservations, instances."""

    def eks_cluster(self, r: Resource) -> None:
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
        capacity = self._capacity(r)
        pool = (r.inputs.get("labels") or {}).get("aiinfra.io/pool") or \
            (r.inputs.get("tags") or {}).get("aiinfra.io/pool")
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
                     note=f"{covered:g} node(s) billed with capacity reservation {names}")
        else:
            detail = f"{label} {capacity}{' (' + how + ')' if how else ''}"
            self.add(r, "instances", detail, "hour", nodes.map(lambda n: n * self.hours),
                     keys, node_hourly,
                     note="" if node_hourly is not None or keys else how)
        self._root_volumes(r, nodes)
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
