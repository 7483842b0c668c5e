"""Pricing of compute: the EKS control plane, node groups, Karpenter NodePools, capacity
reservations, and EC2 instances and EBS volumes outside them.

How many nodes a GPU NodePool runs: ``infra.cost.karpenter`` (max from its limits, min and
expected from the serving workload, placed by weight on the cheapest allowed type).

How node groups and NodePools are priced:

- NodePools: min and expected on the pool's cheapest allowed type at its capacity's price,
  max on the dearest type its limits allow (node count × price);
- on-demand node groups: EKS launches on-demand capacity in the listed order (prioritized),
  so every column uses the first instance type;
- spot node groups: capacity-optimized allocation spreads over the listed types, so
  *expected* uses the mean of their prices, *min* the cheapest and *max* the dearest;
- spot, both: *expected* and *max* include the assumed share of hours that falls back to
  on-demand (``infra.cost.spot``); *min* is all spot;
- reserved: the pool's reserved term (``reservedTerm`` in the stack config) at the
  no-upfront effective hourly rate. A capacity reservation for the pool is billed in full
  (its instance count, all month) at that rate; the node group then adds only the nodes
  beyond the reservation, at the on-demand rate. No double counting.
- every node's gp3 root volume comes from its launch template.
"""

from __future__ import annotations

from infra.catalog import catalog as instance_catalog
from infra.catalog import eks_versions
from infra.config import StackConfig
from infra.cost import karpenter
from infra.cost.model import PoolCost, Range
from infra.cost.pricer import PricerBase
from infra.cost.spot import USAGE_KEY, spot_price
from infra.cost.spot import price_keys as spot_keys
from infra.render import Resource

# Karpenter's NodePool weights, by capacity: the order pools fill in.
FILL_ORDER = ("reserved", "spot", "on-demand")


def place_replicas(config: StackConfig, replicas: int) -> dict[str, int]:
    """Nodes per GPU pool of the stack config for ``replicas`` serving pods, filled as
    Karpenter's weights do (each pool on its smallest node, up to ``maxNodes``)."""
    per_pod = config.serving.gpus_per_pod
    order = [p for capacity in FILL_ORDER for p in config.gpu_pools if p.capacity == capacity]
    return karpenter.fill(replicas, [(p.name, p.gpus_per_node // per_pod, p.max_nodes)
                                     for p in order])


class ComputePricer(PricerBase):
    """Prices the EKS control plane and EC2 capacity: node groups, reservations, instances."""

    def eks_cluster(self, r: Resource) -> None:
        """Standard support, or the extended rate once the version has left standard support
        on the catalogue's date and the cluster stays (support type EXTENDED, EKS's
        default); with STANDARD, EKS upgrades the cluster instead."""
        version = str(r.inputs.get("version", ""))
        support = (r.inputs.get("upgradePolicy") or {}).get("supportType") or "EXTENDED"
        window = eks_versions().versions.get(version)
        on = self.cat.as_of
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

    def _node_price(self, types: list[str], capacity: str, term: str | None,
                    resource: Resource | None = None) -> tuple[Range | None, list[str], str]:
        if capacity == "spot":
            keys = [k for t in types for k in spot_keys(t)]
            override = self.usage_value(resource, USAGE_KEY) if resource is not None else None
            prices = [spot_price(self.cat, t, override) for t in types]
            if any(p is None for p in prices):
                return None, keys, ""
            blended = [p.hourly for p in prices]
            how = (f"mean of {len(types)} types, " if len(types) > 1 else "") + \
                "; ".join(p.describe() for p in prices)
            return (Range(min(p.spot for p in prices), sum(blended) / len(blended),
                          max(blended)), keys, how)
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

    def _nodes(self, r: Resource, pool: str | None, types: list[str], capacity: str,
               nodes: Range, derived: str = "") -> None:
        """The instance line of a node group or NodePool, and its GPU pool figures."""
        pool_config = self.pool_configs.get(pool) if pool else None
        term = pool_config.reserved_term if pool_config else None
        node_hourly, keys, how = self._node_price(types, capacity, term, r)
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
            line = self.add(r, "instances", f"{label} on-demand, beyond the reservation",
                            "hour", extra.map(lambda n: n * self.hours), [od_key],
                            Range.of(od) if od is not None else None,
                            note="; ".join(filter(None, [
                                f"{covered:g} node(s) billed with capacity reservation {names}",
                                derived])))
        else:
            detail = f"{label} {capacity}{' (' + how + ')' if how else ''}"
            line = self.add(r, "instances", detail, "hour", nodes.map(lambda n: n * self.hours),
                            keys, node_hourly,
                            note="; ".join(filter(None, [
                                "" if node_hourly is not None or keys else how, derived])))
        is_gpu = any(instance_catalog().ec2[t].gpus for t in types
                     if t in instance_catalog().ec2)
        if is_gpu and pool and pool != "system":
            gpus = min((instance_catalog().ec2[t].gpus for t in types
                        if t in instance_catalog().ec2), default=0)
            od = self.cat.usd(f"ec2/on-demand/{types[0]}")
            self.pools.append(PoolCost(
                pool, capacity, types, nodes, node_hourly, gpus,
                monthly=self.pool_monthly(line, pool),
                on_demand_monthly=nodes * (od * self.hours) if od is not None else None))

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
        key = self.reservation_key(r)
        # a reservation without reserved instances is billed at the on-demand rate
        how = (f"reserved {key.split('/')[1].removeprefix('reserved-')} no upfront"
               if "/reserved-" in key else "on-demand rate")
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
