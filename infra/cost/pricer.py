"""The base of the pricer: the graph's indexes and how a line is added to the report.

``PricerBase`` holds what the per-family pricers (``compute``, ``network``, ``services``,
``kubernetes``) share: the catalogue and usage, lookups over the graph (resources and
launch templates by name, capacity reservations and GPU pool configs by pool, storage
classes), the lines and pools priced so far, and the helpers that add a priced, unpriced or
usage line.
"""

from __future__ import annotations

from infra.cost.catalogue import Catalogue
from infra.cost.model import ZERO, LineItem, PoolCost, Range, Status
from infra.cost.usage import Usage
from infra.render import Graph, Resource


class PricerBase:
    """The graph, its indexes and the report being built; subclasses price resource types."""

    def __init__(self, graph: Graph, catalogue: Catalogue, usage: Usage | None) -> None:
        self.graph = graph
        self.cat = catalogue
        self.usage = usage
        self.hours = catalogue.hours_per_month
        self.lines: list[LineItem] = []
        self.pools: list[PoolCost] = []
        self.notices: list[str] = []
        self.by_name = {r.name: r for r in graph.resources}
        self.components = {r.name for r in graph.resources if r.type.startswith("aiinfra:")}
        self.templates = {r.name: r for r in graph.of_type("aws:ec2/launchTemplate:LaunchTemplate")}
        self.reservations: dict[str, list[Resource]] = {}
        for odcr in graph.of_type("aws:ec2/capacityReservation:CapacityReservation"):
            pool = (odcr.inputs.get("tags") or {}).get("aiinfra.io/pool")
            if pool:
                self.reservations.setdefault(pool, []).append(odcr)
        self.pool_configs = {p.name: p for p in graph.config.gpu_pools}
        self.storage_classes = {
            (r.inputs.get("metadata") or {}).get("name", r.name): r.inputs
            for r in graph.of_type("kubernetes:storage.k8s.io/v1:StorageClass")}
        self.prefix = graph.config.name_prefix + "-"

    def component(self, resource: Resource) -> str:
        """The nearest enclosing component (``nodes``, ``network``, …) of ``resource``."""
        current, seen = resource, {resource.name}
        while current.parent in self.by_name and current.parent not in seen:
            seen.add(current.parent)
            current = self.by_name[current.parent]
            if current.name in self.components:
                return current.name.removeprefix(self.prefix)
        return "(stack)"

    def add(self, resource: Resource, item: str, description: str, unit: str,
            quantity: Range | None, price_keys: list[str] | tuple[str, ...],
            unit_price: Range | None = None, *, usage_key: str | None = None,
            note: str = "") -> LineItem:
        """Add a line priced at the catalogue price of its key, unless ``unit_price`` is given.

        A missing price makes the line unpriced; a ``None`` quantity for a usage-based charge
        (``usage_key``) makes it a usage line, listed but not totalled.
        """
        keys = tuple(price_keys)
        status: Status = "priced"
        if unit_price is None:
            missing = [k for k in keys if self.cat.usd(k) is None]
            if missing or not keys:
                status = "unpriced"
                note = note or ("; ".join(self.cat.why_missing(k) for k in missing)
                                if missing else "no price model")
            else:
                unit_price = Range.of(self.cat.usd(keys[0]))
        if status == "priced" and usage_key is not None and quantity is None:
            status = "usage"
            note = f"set {usage_key} in the usage file"
            quantity = ZERO
        line = LineItem(self.component(resource), resource.type, resource.name, item,
                        description, unit, quantity if quantity is not None else ZERO,
                        unit_price if status != "unpriced" else None, status, keys, note)
        self.lines.append(line)
        return line

    def unpriced(self, resource: Resource, description: str, note: str,
                 item: str = "resource", keys: tuple[str, ...] = ()) -> None:
        self.lines.append(LineItem(self.component(resource), resource.type, resource.name,
                                   item, description, "", ZERO, None, "unpriced", keys, note))

    def usage_value(self, resource: Resource, key: str) -> float | None:
        return self.usage.value(resource.type, resource.name, key) if self.usage else None

    def add_usage(self, resource: Resource, item: str, description: str, unit: str,
                  price_key: str, usage_key: str, per_unit: float = 1.0) -> LineItem:
        """A line whose quantity is the usage file's ``usage_key`` (÷ ``per_unit``, e.g. 1e6
        requests per priced unit); a usage line when the file does not set it."""
        value = self.usage_value(resource, usage_key)
        return self.add(resource, item, description, unit,
                        Range.of(value / per_unit) if value is not None else None,
                        [price_key], usage_key=usage_key)

    def reservation_monthly(self, pool: str) -> Range | None:
        """The capacity reservations of ``pool`` a month, at the rate they are billed at."""
        total = Range.of(0.0)
        for odcr in self.reservations.get(pool, []):
            key = self.reservation_key(odcr)
            usd = self.cat.usd(key)
            if usd is None:
                return None
            total = total + Range.of(float(odcr.inputs.get("instanceCount", 0)) * usd * self.hours)
        return total

    def reservation_key(self, odcr: Resource) -> str:
        """A reservation of a reserved pool is billed at its RI term, else at on-demand."""
        instance_type = odcr.inputs.get("instanceType", "")
        pool = self.pool_configs.get((odcr.inputs.get("tags") or {}).get("aiinfra.io/pool"))
        if pool is not None and pool.capacity == "reserved":
            return f"ec2/reserved-{pool.reserved_term}/{instance_type}"
        return f"ec2/on-demand/{instance_type}"

    def pool_monthly(self, line: LineItem, pool: str) -> Range | None:
        """A GPU pool's instance line plus its reservations (None if either is unpriced)."""
        reserved = self.reservation_monthly(pool)
        if line.monthly is None or reserved is None:
            return None
        return line.monthly + reserved

    def monthly_hours(self, count: float = 1) -> Range:
        return Range.of(count * self.hours)
