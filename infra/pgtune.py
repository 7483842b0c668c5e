"""Postgres parameters from an instance's vCPUs and memory, following PGTune's formulas.

PGTune (github.com/le0pard/pgtune, ``configurationSlice.js``) for Linux, SSD storage and the
"web" or "oltp" workload. Memory is in kB as PGTune computes it; ``rds_parameters`` converts
to the units RDS expects and says which parameters need a reboot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

KB_PER_MB = 1024
KB_PER_GB = 1024 * 1024

Workload = Literal["web", "oltp"]

# Parameters PostgreSQL reads only at start: RDS must apply them at reboot.
STATIC = frozenset({"shared_buffers", "max_connections", "max_worker_processes", "huge_pages",
                    "wal_buffers"})


@dataclass(frozen=True)
class PGTune:
    max_connections: int
    shared_buffers_kb: int
    effective_cache_size_kb: int
    maintenance_work_mem_kb: int
    work_mem_kb: int
    wal_buffers_kb: int
    min_wal_size_mb: int
    max_wal_size_mb: int
    checkpoint_completion_target: float
    default_statistics_target: int
    random_page_cost: float
    effective_io_concurrency: int
    huge_pages: str
    max_worker_processes: int | None
    max_parallel_workers_per_gather: int | None
    max_parallel_workers: int | None
    max_parallel_maintenance_workers: int | None


def pgtune(vcpus: int, memory_gib: float, workload: Workload = "oltp",
           max_connections: int | None = None) -> PGTune:
    if vcpus < 1 or memory_gib <= 0:
        raise ValueError("pgtune needs at least 1 vCPU and some memory")
    total_kb = int(memory_gib * KB_PER_GB)
    connections = max_connections or {"web": 200, "oltp": 300}[workload]
    shared = total_kb // 4
    wal = 3 * shared // 100
    if wal > 16 * KB_PER_MB:
        wal = 16 * KB_PER_MB
    if wal > 14 * KB_PER_MB:  # close to 16 MB: round up, as PGTune does
        wal = 16 * KB_PER_MB
    wal = max(wal, 32)
    parallel = vcpus >= 4
    workers = vcpus if parallel else 8
    work_mem = (total_kb - shared) // ((connections + workers) * 3)
    half = min(math.ceil(vcpus / 2), 4)
    min_wal, max_wal = {"web": (1024, 4096), "oltp": (2048, 8192)}[workload]
    return PGTune(
        max_connections=connections,
        shared_buffers_kb=shared,
        effective_cache_size_kb=total_kb * 3 // 4,
        maintenance_work_mem_kb=min(total_kb // 16, 8 * KB_PER_GB),
        work_mem_kb=max(work_mem, 4 * KB_PER_MB),
        wal_buffers_kb=wal,
        min_wal_size_mb=min_wal,
        max_wal_size_mb=max_wal,
        checkpoint_completion_target=0.9,
        default_statistics_target=100,
        random_page_cost=1.1,
        effective_io_concurrency=200,
        huge_pages="try" if shared >= 2 * KB_PER_GB else "off",
        max_worker_processes=vcpus if parallel else None,
        max_parallel_workers_per_gather=half if parallel else None,
        max_parallel_workers=vcpus if parallel else None,
        max_parallel_maintenance_workers=half if parallel else None,
    )


@dataclass(frozen=True)
class Parameter:
    name: str
    value: str
    apply_method: Literal["immediate", "pending-reboot"]


def rds_parameters(tune: PGTune) -> list[Parameter]:
    """RDS parameter group entries: 8 kB pages for buffers, kB for work memory, MB for WAL."""
    values: dict[str, object] = {
        "max_connections": tune.max_connections,
        "shared_buffers": tune.shared_buffers_kb // 8,
        "effective_cache_size": tune.effective_cache_size_kb // 8,
        "maintenance_work_mem": tune.maintenance_work_mem_kb,
        "work_mem": tune.work_mem_kb,
        "wal_buffers": tune.wal_buffers_kb // 8,
        "min_wal_size": tune.min_wal_size_mb,
        "max_wal_size": tune.max_wal_size_mb,
        "checkpoint_completion_target": tune.checkpoint_completion_target,
        "default_statistics_target": tune.default_statistics_target,
        "random_page_cost": tune.random_page_cost,
        "effective_io_concurrency": tune.effective_io_concurrency,
        # RDS takes on/off only; PGTune's "try" is "use them when the instance can".
        "huge_pages": "on" if tune.huge_pages == "try" else "off",
    }
    for name in ("max_worker_processes", "max_parallel_workers_per_gather",
                 "max_parallel_workers", "max_parallel_maintenance_workers"):
        value = getattr(tune, name)
        if value is not None:
            values[name] = value
    return [Parameter(name, str(value), "pending-reboot" if name in STATIC else "immediate")
            for name, value in values.items()]
