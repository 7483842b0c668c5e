"""Cost per 1M inferences for each GPU pool and blended across the stack's capacity mix.

Throughput is inferences per second that one GPU node sustains: from a benchmark JSON written
by ``aiinfra bench --output`` (``aiinfra.inferences_per_s`` of a ``--compare`` run, or the
top-level ``inferences_per_s`` of a plain run) or stated per pool. A pool's cost per 1M
inferences is its node's hourly price over the inferences one node serves in an hour; the
blend weights pools by their expected (desired) node counts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from infra.cost.model import Report

SECONDS_PER_HOUR = 3600.0


class ThroughputError(ValueError):
    """No usable throughput in the benchmark result or the stated figures."""


@dataclass
class PoolUnitCost:
    name: str
    capacity: str
    throughput: float
    nodes_expected: float
    node_hourly: float | None
    per_million: float | None

    def as_dict(self) -> dict:
        return {"pool": self.name, "capacity": self.capacity,
                "throughput_per_node": self.throughput, "nodes_expected": self.nodes_expected,
                "node_hourly_usd": self.node_hourly, "usd_per_million": self.per_million}


@dataclass
class UnitCosts:
    source: str
    pools: list[PoolUnitCost]
    blended: float | None
    all_in: float | None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"throughput_source": self.source, "pools": [p.as_dict() for p in self.pools],
                "blended_usd_per_million": self.blended,
                "all_in_usd_per_million": self.all_in, "notes": self.notes}


def throughput_from_bench(path: Path) -> float:
    """Inferences per second served, from a JSON written by ``aiinfra bench --output``."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ThroughputError(f"cannot read benchmark result {path}: {exc}") from None
    for candidate in (data.get("aiinfra") if isinstance(data.get("aiinfra"), dict) else None,
                      data):
        if candidate and isinstance(candidate.get("inferences_per_s"), int | float):
            value = float(candidate["inferences_per_s"])
            if value > 0:
                return value
    raise ThroughputError(f"{path}: no aiinfra.inferences_per_s or inferences_per_s > 0 "
                          "(write it with `aiinfra bench --output FILE`)")


def parse_throughput(values: list[str]) -> float | dict[str, float]:
    """``["120"]`` → 120.0 for every pool; ``["l4-spot=120", "l4-burst=150"]`` → per pool."""
    per_pool: dict[str, float] = {}
    default: float | None = None
    for value in values:
        name, sep, number = value.partition("=")
        try:
            figure = float(number if sep else name)
        except ValueError:
            raise ThroughputError(f"--throughput-per-node {value!r}: give N or POOL=N") from None
        if figure <= 0:
            raise ThroughputError(f"--throughput-per-node {value!r} must be > 0")
        if sep:
            per_pool[name] = figure
        else:
            default = figure
    if default is not None and not per_pool:
        return default
    if default is not None:
        per_pool["*"] = default
    return per_pool


def unit_costs(report: Report, throughput: float | dict[str, float],
               source: str) -> UnitCosts:
    notes: list[str] = []
    pools: list[PoolUnitCost] = []
    for pool in report.pools:
        if isinstance(throughput, dict):
            per_node = throughput.get(pool.name, throughput.get("*"))
            if per_node is None:
                notes.append(f"no throughput for pool {pool.name}; left out")
                continue
        else:
            per_node = throughput
        hourly = pool.node_hourly.expected if pool.node_hourly is not None else None
        per_million = (hourly / (per_node * SECONDS_PER_HOUR) * 1e6
                       if hourly is not None else None)
        if hourly is None:
            notes.append(f"pool {pool.name} ({pool.capacity}) is unpriced")
        pools.append(PoolUnitCost(pool.name, pool.capacity, per_node, pool.nodes.expected,
                                  hourly, per_million))
    if not pools:
        raise ThroughputError("no GPU pool to price")
    running = [p for p in pools if p.nodes_expected > 0]
    blended = all_in = None
    capacity = sum(p.nodes_expected * p.throughput for p in running) * SECONDS_PER_HOUR
    if not running:
        notes.append("no GPU node is expected to run (all desired sizes are 0): no blend")
    elif any(p.node_hourly is None for p in running):
        notes.append("the blend needs every running pool priced")
    else:
        spend = sum(p.nodes_expected * p.node_hourly for p in running)
        blended = spend / capacity * 1e6
    if capacity:
        all_in = report.total.expected / (capacity * report.hours_per_month) * 1e6
        if report.unpriced:
            notes.append("all-in excludes unpriced items: a lower bound")
    if isinstance(throughput, float) and len(pools) > 1:
        notes.append("one throughput figure applied to every pool; give POOL=N per pool "
                     "when their instance types differ")
    return UnitCosts(source, pools, blended, all_in, notes)
