"""Pricing of Karpenter GPU NodePools: node counts from ``infra.cost.karpenter``, the price of
each allowed instance type at the pool's capacity, and the saving against all on-demand.

- min and expected: nodes of the pool's cheapest allowed type (by the capacity's own price:
  spot price, RI rate, on-demand rate), placed by weight;
- max: for each allowed type, the nodes its limits allow × its hourly price; the dearest;
- spot: the expected and max hours include the assumed on-demand fallback (``infra.cost.spot``);
- reserved with a capacity reservation: the reservation is its own line (billed all month);
  the NodePool line holds the nodes beyond it, at on-demand (the pool's fallback capacity).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from infra.catalog import catalog as instance_catalog
from infra.cost import karpenter
from infra.cost.model import PoolCost, Range
from infra.cost.pricer import PricerBase
from infra.cost.spot import USAGE_KEY, SpotPrice, spot_price
from infra.cost.spot import price_keys as spot_keys
from infra.render import Resource


@dataclass(frozen=True)
class TypePrice:
    """One allowed instance type at the pool's capacity: the rate Karpenter ranks by, the
    hourly cost the preview counts (spot: with its fallback), and on-demand to compare."""

    instance_type: str
    listed: float
    hourly: float
    on_demand: float | None
    spot: SpotPrice | None = None


class NodePoolPricer(PricerBase):
    """Prices each GPU NodePool of the graph."""

    @cached_property
    def workload(self) -> karpenter.Workload:
        expected = self.usage.value("kubernetes:apps/v1:Deployment",
                                    f"{self.prefix}serving-deployment",
                                    "expected_replicas") if self.usage else None
        return karpenter.serving_workload(self.graph, expected)

    @cached_property
    def shapes(self) -> list[karpenter.NodePoolShape]:
        """Every GPU NodePool, in the order Karpenter tries them (weight, then name)."""
        shapes = [karpenter.NodePoolShape.of(r) for r in self.graph.of_type(karpenter.NODEPOOL)]
        return sorted((s for s in shapes if s.pool in self.pool_configs),
                      key=lambda s: (-s.weight, s.resource.name))

    def type_prices(self, shape: karpenter.NodePoolShape) -> tuple[list[TypePrice], list[str]]:
        """The priced allowed types, and the price keys of those that are missing."""
        pool = self.pool_configs[shape.pool]
        override = self.usage_value(shape.resource, USAGE_KEY)
        prices, missing = [], []
        for t in shape.instance_types:
            on_demand = self.cat.usd(f"ec2/on-demand/{t}")
            if pool.capacity == "spot":
                spot = spot_price(self.cat, t, override)
                if spot is None:
                    missing += [k for k in spot_keys(t) if self.cat.usd(k) is None] or \
                        [f"spot_advisor/{t}"]
                    continue
                prices.append(TypePrice(t, spot.spot, spot.hourly, on_demand, spot))
                continue
            key = (f"ec2/on-demand/{t}" if pool.capacity == "on-demand" or self.reservations.get(
                shape.pool) else f"ec2/reserved-{pool.reserved_term}/{t}")
            usd = self.cat.usd(key)
            if usd is None:
                missing.append(key)
            else:
                prices.append(TypePrice(t, usd, usd, on_demand))
        return prices, missing

    @cached_property
    def placement(self) -> dict[str, tuple[int, int]]:
        """Nodes per pool (min, expected) on each pool's cheapest allowed type."""
        order = []
        for shape in self.shapes:
            prices, _ = self.type_prices(shape)
            cheapest = min(prices, key=lambda p: p.listed, default=None)
            if cheapest is None:
                order.append((shape.pool, 0, 0))
                continue
            gpus = instance_catalog().ec2[cheapest.instance_type].gpus
            most = shape.nodes_within_limits(cheapest.instance_type)
            order.append((shape.pool, gpus // self.workload.gpus_per_pod,
                          most if most is not None else self.pool_configs[shape.pool].max_nodes))
        low = karpenter.fill(self.workload.min_replicas, order)
        mid = karpenter.fill(self.workload.expected_replicas, order)
        room = sum(pods * most for _, pods, most in order)
        if order and self.workload.max_replicas > room:
            self.notices.append(
                f"serving: KEDA's max {self.workload.max_replicas} replicas × "
                f"{self.workload.gpus_per_pod} GPU exceed what the GPU NodePools' limits hold "
                f"({room} pods on their cheapest types): "
                f"{self.workload.max_replicas - room} would stay Pending")
        return {name: (low[name], mid[name]) for name, _, _ in order}

    def node_pool(self, r: Resource) -> None:
        shape = karpenter.NodePoolShape.of(r)
        pool = self.pool_configs.get(shape.pool)
        if pool is None:
            self.unpriced(r, "instances", "a NodePool of no GPU pool in the stack config",
                          item="instances")
            return
        prices, missing = self.type_prices(shape)
        order = " → ".join(f"{s.pool} ({s.weight})" for s in self.shapes)
        if missing or not prices:
            self.unpriced(r, f"{pool.capacity} nodes", "; ".join(
                self.cat.why_missing(k) for k in missing) or "no allowed instance type",
                item="instances", keys=tuple(missing))
            return
        cheapest = min(prices, key=lambda p: p.listed)
        sized = [(p, shape.nodes_within_limits(p.instance_type) or pool.max_nodes)
                 for p in prices]
        dearest, most = max(sized, key=lambda pn: pn[1] * pn[0].hourly)
        low, mid = self.placement[shape.pool]
        nodes = Range(float(low), float(mid), float(most))
        covered = float(sum(int(o.inputs.get("instanceCount", 0))
                            for o in self.reservations.get(shape.pool, [])))
        billed = nodes.map(lambda n: max(0.0, n - covered))
        unit = Range(cheapest.spot.spot if cheapest.spot else cheapest.hourly,
                     cheapest.hourly, dearest.hourly)
        gpus = instance_catalog().ec2[cheapest.instance_type].gpus
        derived = (f"nodes: {self.workload.describe()} placed by weight {order} on "
                   f"{cheapest.instance_type} ({gpus} GPU) → {low} / {mid}; max {most} × "
                   f"{dearest.instance_type} from limits {shape.limits_text()}")
        notes = [derived]
        if covered:
            notes.insert(0, f"{covered:g} node(s) billed with capacity reservation "
                         + ", ".join(o.name for o in self.reservations[shape.pool]))
            description = f"{cheapest.instance_type} on-demand, beyond the reservation"
        else:
            description = (f"{cheapest.instance_type} {pool.capacity}"
                           + (f", cheapest of {len(prices)} types" if len(prices) > 1 else "")
                           + (f" (reserved {pool.reserved_term} no upfront)"
                              if pool.capacity == "reserved" else ""))
        if cheapest.spot is not None:
            notes.append("expected: " + cheapest.spot.describe()
                         + ("" if dearest is cheapest else "; max: " + dearest.spot.describe()))
        keys = [k for p in (cheapest, dearest) for k in (
            spot_keys(p.instance_type) if p.spot else
            [f"ec2/on-demand/{p.instance_type}" if covered or pool.capacity == "on-demand"
             else f"ec2/reserved-{pool.reserved_term}/{p.instance_type}"])]
        line = self.add(r, "instances", description, "hour", billed * self.hours,
                        list(dict.fromkeys(keys)), unit, note="; ".join(notes))
        self._volumes(r, nodes)
        on_demand = None
        if cheapest.on_demand is not None and dearest.on_demand is not None:
            on_demand = Range(low * cheapest.on_demand, mid * cheapest.on_demand,
                              most * dearest.on_demand) * self.hours
        monthly = self.pool_monthly(line, shape.pool)
        node_hourly: Range | None = unit
        if covered and monthly is None:
            node_hourly = None
        elif covered and monthly is not None:  # a node's share of the reservation and the rest
            rate = self.cat.usd(self.reservation_key(self.reservations[shape.pool][0]))
            node_hourly = Range(*(m / (n * self.hours) if n else rate for m, n in (
                (monthly.min, nodes.min), (monthly.expected, nodes.expected),
                (monthly.max, nodes.max))))
        self.pools.append(PoolCost(
            shape.pool, pool.capacity, list(shape.instance_types), nodes, node_hourly, gpus,
            monthly=monthly, on_demand_monthly=on_demand))

    def _volumes(self, r: Resource, nodes: Range) -> None:
        """Each node's EBS volumes, from the NodePool's EC2NodeClass."""
        template = ((r.inputs.get("spec") or {}).get("template") or {}).get("spec") or {}
        class_name = (template.get("nodeClassRef") or {}).get("name")
        node_class = next((c for c in self.graph.of_type(
            "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass")
            if (c.inputs.get("metadata") or {}).get("name") == class_name), None)
        mappings = ((node_class.inputs.get("spec") or {}).get("blockDeviceMappings") or []
                    if node_class else [])
        for mapping in mappings:
            ebs = mapping.get("ebs") or {}
            size = float(str(ebs.get("volumeSize", "0")).removesuffix("Gi"))
            volume_type = ebs.get("volumeType", "gp3")
            self.add(r, f"storage-{volume_type}",
                     f"root volume {size:g} GB {volume_type} per node", "gb-month",
                     nodes * size, [f"ebs/storage/{volume_type}"])
