"""PGTune's formulas, table-driven, and their translation to RDS parameters."""

from __future__ import annotations

import pytest

from infra.catalog import catalog
from infra.pgtune import STATIC, pgtune, rds_parameters

GIB_KB = 1024 * 1024


@pytest.mark.parametrize(
    ("instance_class", "workload", "expected"),
    [
        # 16 GiB, 2 vCPU, web: work_mem = 12 GiB / ((200 + 8) × 3) = 20164.9 → 20164 kB.
        ("db.r6g.large", "web", {"shared_buffers_kb": 4 * GIB_KB,
                                 "effective_cache_size_kb": 12 * GIB_KB,
                                 "maintenance_work_mem_kb": GIB_KB, "work_mem_kb": 20164,
                                 "wal_buffers_kb": 16384, "huge_pages": "try",
                                 "max_connections": 200, "min_wal_size_mb": 1024,
                                 "max_wal_size_mb": 4096, "max_worker_processes": None}),
        # 4 GiB: shared_buffers 1 GiB, wal_buffers capped at 16 MB, no huge pages,
        # work_mem = (4 GiB - 1 GiB) / ((300 + 8) * 3) = 3405 kB, floored up to 4 MB.
        ("db.t4g.medium", "oltp", {"shared_buffers_kb": GIB_KB, "wal_buffers_kb": 16384,
                                   "huge_pages": "off", "work_mem_kb": 4096,
                                   "min_wal_size_mb": 2048, "max_wal_size_mb": 8192,
                                   "max_parallel_workers": None}),
        # 4 vCPU: parallel settings appear; work_mem = 12 GiB / ((300 + 4) * 3) = 13797 kB.
        ("db.m7g.xlarge", "oltp", {"max_worker_processes": 4,
                                   "max_parallel_workers_per_gather": 2,
                                   "max_parallel_workers": 4,
                                   "max_parallel_maintenance_workers": 2,
                                   "work_mem_kb": 12 * GIB_KB // (304 * 3)}),
        # 16 vCPU, 128 GiB: gather workers capped at 4, maintenance_work_mem at 8 GiB.
        ("db.r7g.4xlarge", "oltp", {"max_parallel_workers_per_gather": 4,
                                    "max_parallel_maintenance_workers": 4,
                                    "max_worker_processes": 16,
                                    "maintenance_work_mem_kb": 8 * GIB_KB,
                                    "effective_cache_size_kb": 96 * GIB_KB,
                                    "work_mem_kb": 96 * GIB_KB // (316 * 3)}),
    ],
)
def test_pgtune_matches_the_formulas(instance_class: str, workload: str, expected: dict) -> None:
    spec = catalog().rds[instance_class]
    tune = pgtune(spec.vcpu, spec.memory_gib, workload)
    for name, value in expected.items():
        assert getattr(tune, name) == value, name


def test_rds_units_and_apply_methods() -> None:
    parameters = {p.name: p for p in rds_parameters(pgtune(2, 16, "web"))}
    assert parameters["shared_buffers"].value == str(4 * GIB_KB // 8)  # 8 kB pages
    assert parameters["effective_cache_size"].value == str(12 * GIB_KB // 8)
    assert parameters["work_mem"].value == "20164"  # kB: 12 GiB / (208 × 3), floored
    assert parameters["wal_buffers"].value == "2048"  # 16 MB in 8 kB pages
    assert parameters["max_wal_size"].value == "4096"  # MB
    assert parameters["huge_pages"].value == "on"
    assert "max_worker_processes" not in parameters
    for parameter in parameters.values():
        expected = "pending-reboot" if parameter.name in STATIC else "immediate"
        assert parameter.apply_method == expected, parameter.name
    assert parameters["shared_buffers"].apply_method == "pending-reboot"
    assert parameters["work_mem"].apply_method == "immediate"


def test_pgtune_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="at least 1 vCPU"):
        pgtune(0, 8)
