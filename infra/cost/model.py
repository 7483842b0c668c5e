"""The cost report's data model: monthly ranges, line items, GPU pool costs and the report.

Every figure is a ``Range`` of the three monthly columns (min / expected / max). A ``Report``
holds every line, priced or not, and derives from them the totals (priced lines only), the
per-component subtotals and the warnings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

Status = Literal["priced", "unpriced", "usage"]


@dataclass(frozen=True)
class Range:
    """A monthly figure in the three columns."""

    min: float
    expected: float
    max: float

    @classmethod
    def of(cls, value: float) -> Range:
        return cls(value, value, value)

    def __add__(self, other: Range) -> Range:
        return Range(self.min + other.min, self.expected + other.expected,
                     self.max + other.max)

    def __sub__(self, other: Range) -> Range:
        return Range(self.min - other.min, self.expected - other.expected,
                     self.max - other.max)

    def __mul__(self, other: Range | float) -> Range:
        if isinstance(other, Range):
            return Range(self.min * other.min, self.expected * other.expected,
                         self.max * other.max)
        return Range(self.min * other, self.expected * other, self.max * other)

    def map(self, fn: Callable[[float], float]) -> Range:
        return Range(fn(self.min), fn(self.expected), fn(self.max))

    def as_dict(self) -> dict[str, float]:
        return {"min": self.min, "expected": self.expected, "max": self.max}


ZERO = Range.of(0.0)


@dataclass
class LineItem:
    component: str
    type: str
    name: str
    item: str                       # stable kind: instances, storage, hours, data, …
    description: str
    unit: str                       # unit of ``quantity`` and of the unit price
    quantity: Range
    unit_price: Range | None        # None: unpriced
    status: Status = "priced"
    price_keys: tuple[str, ...] = ()
    note: str = ""

    @property
    def monthly(self) -> Range | None:
        if self.status != "priced" or self.unit_price is None:
            return None
        return self.quantity * self.unit_price

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.type, self.name, self.item)

    def as_dict(self) -> dict:
        monthly = self.monthly
        return {"component": self.component, "type": self.type, "name": self.name,
                "item": self.item, "description": self.description, "unit": self.unit,
                "quantity": self.quantity.as_dict(),
                "unit_price": self.unit_price.as_dict() if self.unit_price else None,
                "monthly": monthly.as_dict() if monthly else None, "status": self.status,
                "price_keys": list(self.price_keys), "note": self.note}


@dataclass
class PoolCost:
    """One GPU pool: how many nodes, and what one node costs an hour (for $/1M inferences)."""

    name: str
    capacity: str
    instance_types: list[str]
    nodes: Range
    node_hourly: Range | None
    gpus_per_node: int
    # The pool's instance cost a month (its reservation included) and what the same nodes
    # would cost all on-demand; None where unpriced.
    monthly: Range | None = None
    on_demand_monthly: Range | None = None

    @property
    def saving(self) -> Range | None:
        """What the pool's capacity type saves against all on-demand (negative: it costs more,
        e.g. a reservation paid for while idle)."""
        if self.monthly is None or self.on_demand_monthly is None:
            return None
        return self.on_demand_monthly - self.monthly

    def as_dict(self) -> dict:
        saving = self.saving
        return {"name": self.name, "capacity": self.capacity,
                "instance_types": self.instance_types, "nodes": self.nodes.as_dict(),
                "node_hourly": self.node_hourly.as_dict() if self.node_hourly else None,
                "gpus_per_node": self.gpus_per_node,
                "monthly": self.monthly.as_dict() if self.monthly else None,
                "on_demand_monthly": (self.on_demand_monthly.as_dict()
                                      if self.on_demand_monthly else None),
                "saving_vs_on_demand": saving.as_dict() if saving else None}


@dataclass
class Report:
    stack: str
    region: str
    hours_per_month: float
    lines: list[LineItem]
    pools: list[PoolCost]
    budget_usd: float | None = None
    usage_source: str | None = None
    catalogue_date: str | None = None
    name_prefix: str = ""
    # findings about the graph that are not a price (e.g. replicas no NodePool can hold)
    notices: list[str] = field(default_factory=list)

    @property
    def priced(self) -> list[LineItem]:
        return [li for li in self.lines if li.status == "priced"]

    @property
    def unpriced(self) -> list[LineItem]:
        return [li for li in self.lines if li.status == "unpriced"]

    @property
    def usage_missing(self) -> list[LineItem]:
        return [li for li in self.lines if li.status == "usage"]

    @property
    def total(self) -> Range:
        total = ZERO
        for line in self.priced:
            total = total + line.monthly
        return total

    def by_component(self) -> dict[str, list[LineItem]]:
        """Lines per component (in order of appearance), each resource's lines together."""
        groups: dict[str, list[LineItem]] = {}
        for line in self.lines:
            groups.setdefault(line.component, []).append(line)
        return {component: sorted(lines, key=lambda li: li.name)
                for component, lines in groups.items()}

    def component_totals(self) -> dict[str, Range]:
        return {component: sum((li.monthly for li in lines if li.status == "priced"), ZERO)
                for component, lines in self.by_component().items()}

    @property
    def over_budget(self) -> bool:
        return self.budget_usd is not None and self.total.expected > self.budget_usd

    def warnings(self) -> list[str]:
        out = [f"unpriced: {li.type} {li.name} ({li.description}): {li.note}"
               for li in self.unpriced]
        out += [f"usage not given: {li.name} {li.item} ({li.note})" for li in self.usage_missing]
        return out + self.notices

    def as_dict(self) -> dict:
        return {"stack": self.stack, "region": self.region,
                "hours_per_month": self.hours_per_month,
                "currency": "USD", "catalogue_date": self.catalogue_date,
                "usage_file": self.usage_source,
                "total": self.total.as_dict(), "budget_monthly_usd": self.budget_usd,
                "over_budget": self.over_budget,
                "components": {c: r.as_dict() for c, r in self.component_totals().items()},
                "lines": [li.as_dict() for li in self.lines],
                "pools": [p.as_dict() for p in self.pools],
                "unpriced": [li.as_dict() for li in self.unpriced],
                "warnings": self.warnings()}
