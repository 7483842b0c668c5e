"""Paired, interleaved comparisons of two server configurations (bench/paired.py)."""

from __future__ import annotations

from pathlib import Path
from subprocess import Popen

import numpy as np
import pytest

from bench.paired import (
    Side,
    _pooled,
    compare_sides,
    median_interval,
    parse_cpus,
    server_command,
    summarize_pairs,
)
from bench.procstat import tree_cpu_seconds


@pytest.mark.parametrize(("text", "cpus"), [
    ("0", {0}), ("0-2", {0, 1, 2}), ("0,3", {0, 3}), ("1-2, 5", {1, 2, 5}), ("", None),
    (None, None),
])
def test_parse_cpus(text: str | None, cpus: set[int] | None) -> None:
    assert parse_cpus(text) == cpus


@pytest.mark.parametrize("text", ["a", "1-", "-1", "3-1", "0,,1", "²"])
def test_parse_cpus_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="not a CPU list"):
        parse_cpus(text)


def test_server_command_pins_with_taskset(tmp_path: Path) -> None:
    plain = server_command(tmp_path, "m", 8000)
    assert plain[1:4] == ["-m", "serving.cli", "serve"]
    pinned = server_command(tmp_path, "m", 8000, {2, 0})
    assert pinned[0].endswith("taskset")
    assert pinned[1:3] == ["-c", "0,2"]
    assert pinned[3:] == plain


def window(requests: int, seconds: float, cpu_us: float | None, p99: float) -> dict:
    result = {"requests": requests, "seconds": seconds, "errors_total": 0,
              "rps": requests / seconds, "inferences_per_s": 2 * requests / seconds,
              "p50_ms": p99 / 2, "p95_ms": p99 * 0.9, "p99_ms": p99}
    if cpu_us is not None:
        result["server_cpu_us_per_request"] = cpu_us
    return result


def test_pooled_adds_windows_up() -> None:
    pooled = _pooled([window(100, 1.0, 200.0, 10.0), window(300, 1.0, 100.0, 30.0)])
    assert pooled["requests"] == 400
    assert pooled["rps"] == 200.0
    assert pooled["inferences_per_s"] == 400.0
    # CPU per request weighs each window by its requests, not each window alike.
    assert pooled["server_cpu_us_per_request"] == pytest.approx((100 * 200 + 300 * 100) / 400)
    assert pooled["p99_ms"] == 20.0


def test_median_interval_brackets_the_median_and_is_repeatable() -> None:
    values = [0.91, 0.95, 0.96, 0.97, 0.98, 0.99, 1.02]
    low, high = median_interval(values)
    assert low <= 0.97 <= high
    assert (low, high) == median_interval(values)
    assert min(values) <= low
    assert high <= max(values)
    assert median_interval([0.5]) == (0.5, 0.5)


def test_summarize_pairs_takes_medians_over_pairs() -> None:
    pairs = []
    for base_rps, ratio, base_cpu, added in ((1000, 0.98, 200.0, 4.0), (1100, 0.90, 190.0, 20.0),
                                             (900, 0.99, 210.0, 2.0)):
        pairs.append({"a": _pooled([window(base_rps, 1.0, base_cpu, 10.0)]),
                      "b": _pooled([window(int(base_rps * ratio), 1.0, base_cpu + added, 11.0)]),
                      "ratio": ratio})
    summary = summarize_pairs(("a", "b"), pairs)
    assert summary["pairs"] == 3
    assert summary["rps_ratio_median"] == 0.98
    assert summary["rps_ratios"] == [0.98, 0.90, 0.99]
    assert summary["server_cpu_us_added_median"] == pytest.approx(4.0)
    # Review #19: a bootstrap "95 % interval" of the median of 3 values is their min-max;
    # below MIN_PAIRS_FOR_INTERVAL only the range is reported, named as such.
    assert "rps_ratio_ci95" not in summary
    assert "server_cpu_us_added_ci95" not in summary
    assert summary["rps_ratio_range"] == [0.90, 0.99]
    assert summary["server_cpu_us_added_range"] == pytest.approx([2.0, 20.0])
    assert summary["a"]["rps"] == 1000
    assert summary["a"]["requests"] == 3000  # counts add up; rates are medians
    assert summary["b"]["p99_ms"] == 11.0


@pytest.mark.slow
def test_compare_sides_alternates_windows_on_pinned_servers(scale_repository: Path,
                                                            monkeypatch,
                                                            tmp_path: Path) -> None:
    monkeypatch.setenv("AIINFRA_ENGINE_CACHE_DIR", str(tmp_path / "engines"))
    seen: list[tuple[int, set[str]]] = []

    def probe(process: Popen):
        def cpu() -> dict[str, float | None]:
            allowed = {(task / "status").read_text().split("Cpus_allowed_list:\t")[1]
                       .split("\n", 1)[0] for task in Path(f"/proc/{process.pid}/task").iterdir()}
            seen.append((process.pid, allowed))
            return {"server": tree_cpu_seconds(process.pid)}

        return cpu

    sides = (Side("a", scale_repository), Side("b", scale_repository))
    summary = compare_sides(sides, model="scale", pairs=1, rounds=3, duration_s=0.9,
                            warmup_s=0.2, server_cpus={0}, probe=probe,
                            load={"concurrency": 2, "payload": "binary", "batch": 1})
    assert {cpus for _, allowed in seen for cpus in allowed} == {"0"}, "every thread pinned"
    # Two samples per window; windows alternate a b, b a, a b.
    order = [pid for pid, _ in seen[::2]]
    assert order[0] == order[3] == order[4] != order[1] == order[2] == order[5]
    assert summary["pairs"] == 1
    assert summary["rounds"] == 3
    (pair,) = summary["runs"]
    for name in ("a", "b"):
        assert len(pair["windows"][name]) == 3
        assert pair[name]["errors_total"] == 0
        assert pair[name]["requests"] == sum(w["requests"] for w in pair["windows"][name])
        assert pair[name]["server_cpu_us_per_request"] > 0
    assert pair["ratio"] == pytest.approx(pair["b"]["rps"] / pair["a"]["rps"])
    assert summary["rps_ratio_median"] == pair["ratio"]


def test_an_interval_needs_enough_pairs() -> None:
    from bench.paired import MIN_PAIRS_FOR_INTERVAL  # noqa: PLC0415

    rng = np.random.default_rng(1)
    pairs = []
    for _ in range(MIN_PAIRS_FOR_INTERVAL):
        ratio = float(1 + rng.normal(0, 0.02))
        pairs.append({"a": _pooled([window(1000, 1.0, 200.0, 10.0)]),
                      "b": _pooled([window(int(1000 * ratio), 1.0, 204.0, 11.0)]),
                      "ratio": ratio})
    summary = summarize_pairs(("a", "b"), pairs)
    low, high = summary["rps_ratio_ci95"]
    assert min(summary["rps_ratios"]) <= low <= summary["rps_ratio_median"] <= high
    assert summary["rps_ratio_range"] == [min(summary["rps_ratios"]),
                                          max(summary["rps_ratios"])]
