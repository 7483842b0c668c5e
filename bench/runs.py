"""Several runs of one measurement merged into one: the median of each figure."""

from __future__ import annotations

import statistics
from collections.abc import Iterable


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, None where either is missing or b is zero."""
    return a / b if a is not None and b else None


def median_run(runs: list[dict], *, summed: Iterable[str] = ("errors_total",)) -> dict:
    """One load result from several: each numeric figure is the median over the runs that
    have it (None where none has), the ``summed`` counts add up, and anything else is the
    first run's."""
    summed = set(summed)
    merged = dict(runs[0])
    for key in {key for run in runs for key in run}:
        values = [run[key] for run in runs if _is_number(run.get(key))]
        if not values:
            if all(run.get(key) is None for run in runs):
                merged[key] = None
            continue
        merged[key] = sum(values) if key in summed else statistics.median(values)
    return merged


def merge_runs(runs: list[dict]) -> dict:
    """One comparison from several: each section's figures are medians over the runs
    (``median_run``), the machine is the first run's, and every run is kept under
    ``runs``."""
    first = runs[0]
    sections = [key for key, value in first.items()
                if isinstance(value, dict) and key != "machine"]
    result = {key: value for key, value in first.items() if key not in sections}
    for section in sections:
        result[section] = median_run([run[section] for run in runs])
    result["repeat"] = len(runs)
    result["runs"] = runs
    return result
