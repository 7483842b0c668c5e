"""Per model version statistics in Triton's shape (``GET /v2/models[/{m}]/stats``): what
``tritonclient``'s ``get_inference_statistics`` reads. Counts and cumulative nanoseconds, per
worker process (with several workers each answers for itself; ``/metrics`` merges them)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

_STAGES = ("success", "fail", "queue", "compute_input", "compute_infer", "compute_output",
           "cache_hit", "cache_miss")


@dataclass(slots=True)
class Duration:
    count: int = 0
    ns: int = 0

    def add(self, seconds: float, count: int = 1) -> None:
        self.count += count
        self.ns += int(seconds * 1e9) * count

    def as_dict(self) -> dict[str, int]:
        return {"count": self.count, "ns": self.ns}


@dataclass(slots=True)
class VersionStats:
    """Triton's ``ModelStatistics``: request outcomes and stages (``inference_stats``, counted
    per request), rows and executions, and compute time per batch size (``batch_stats``)."""

    stages: dict[str, Duration] = field(
        default_factory=lambda: {stage: Duration() for stage in _STAGES})
    inference_count: int = 0
    execution_count: int = 0
    last_inference_ms: int = 0
    batches: dict[int, Duration] = field(default_factory=dict)

    def executed(self, rows: int, requests: int, queue_s: list[float], compute_s: float) -> None:
        """One batch of ``requests`` requests (``rows`` rows) ran for ``compute_s``."""
        self.execution_count += 1
        self.inference_count += rows
        for wait in queue_s:
            self.stages["queue"].add(wait)
        self.stages["compute_infer"].add(compute_s, requests)
        self.batches.setdefault(rows, Duration()).add(compute_s)

    def answered(self, ok: bool, seconds: float) -> None:
        self.stages["success" if ok else "fail"].add(seconds)
        self.last_inference_ms = int(time.time() * 1000)

    def as_triton(self, name: str, version: int) -> dict:
        return {
            "name": name, "version": str(version), "last_inference": self.last_inference_ms,
            "inference_count": self.inference_count, "execution_count": self.execution_count,
            "inference_stats": {stage: d.as_dict() for stage, d in self.stages.items()},
            "batch_stats": [{"batch_size": size, "compute_input": Duration().as_dict(),
                             "compute_infer": d.as_dict(),
                             "compute_output": Duration().as_dict()}
                            for size, d in sorted(self.batches.items())],
            "memory_usage": [],
        }


class Statistics:
    """Every version's statistics since the process started (a reload keeps counting)."""

    def __init__(self) -> None:
        self._versions: dict[tuple[str, int], VersionStats] = {}

    def of(self, name: str, version: int) -> VersionStats:
        stats = self._versions.get((name, version))
        if stats is None:
            stats = self._versions[(name, version)] = VersionStats()
        return stats

    def recorded(self, name: str | None = None) -> list[tuple[str, int]]:
        return sorted(key for key in self._versions if name is None or key[0] == name)
