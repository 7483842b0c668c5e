"""Two server configurations compared fairly on a small, shared machine.

On a 2-vCPU virtual machine a server's throughput moves for two reasons, both larger than a
few-percent effect under test:

- the machine's speed drifts from one second to the next (neighbours, caches);
- each server *process* runs at a speed of its own for its whole life (memory layout): two
  identical servers, measured over the same alternating windows, still differ by several
  percent (up to 4.4 % in the control run in docs/BENCHMARKS.md).

So a comparison here starts both sides as a fresh pair of processes, ``pairs`` times, and
measures each pair in ``rounds`` short windows that alternate the order (A B, B A, ...) so
that drift falls on both alike. Each pair yields one ratio (its B requests per second over its
A); the headline is the median ratio over pairs, with a bootstrap 95 % interval. A control
run (both sides identical) measures the method's own noise floor.

Pinning (``server_cpus``) gives each server the same CPUs and leaves the others to the load
generator and the throwaway stores, as a server's own cores and a database on another host
would be; pinned, a saturated server's throughput is the inverse of its CPU per request.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen

import numpy as np

from bench.loadgen import Probe, run_against
from bench.process import SERVE, free_port, loopback_url, running
from bench.runs import median_run

WINDOW_WARMUP_S = 0.3  # each window opens fresh connections: not measured
BOOTSTRAP_RESAMPLES = 2000


@dataclass(frozen=True)
class Side:
    """One server configuration: its repository and the environment it runs with."""

    name: str
    repository: Path
    env: dict[str, str] = field(default_factory=dict)


def parse_cpus(text: str | None) -> set[int] | None:
    """A CPU list as ``taskset`` takes it (``0``, ``0-3``, ``0,2``); None when empty."""
    if not text:
        return None
    cpus: set[int] = set()
    for part in text.split(","):
        low, dash, high = part.strip().partition("-")
        if not (low.isascii() and low.isdigit()) or (dash and not (
                high.isascii() and high.isdigit() and int(high) >= int(low))):
            raise ValueError(f"not a CPU list: {text!r} (e.g. 0, 0-1, 0,2)")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


def server_command(repository: Path, model: str, port: int,
                   cpus: set[int] | None = None) -> list[str]:
    command = [*SERVE, "--repository", str(repository), "--port", str(port), "--load", model]
    if cpus is None:
        return command
    taskset = shutil.which("taskset")
    if taskset is None:
        raise RuntimeError("pinning needs taskset: apt-get install util-linux")
    # taskset sets the affinity before the server starts, so every thread it makes keeps it.
    return [taskset, "-c", ",".join(map(str, sorted(cpus))), *command]


@contextmanager
def started(side: Side, model: str, cpus: set[int] | None = None
            ) -> Iterator[tuple[str, Popen]]:
    """``aiinfra serve`` for ``side``, ready; yields its URL and process."""
    port = free_port()
    url = loopback_url(port)
    with running(server_command(side.repository, model, port, cpus), url,
                 env={"AIINFRA_LOG_LEVEL": "warning", **side.env}) as server:
        yield url, server.process


def _pooled(windows: list[dict]) -> dict:
    """One side of one pair: its windows added up (rates over the summed time, CPU over the
    summed requests), latency percentiles as the windows' medians."""
    requests = sum(w["requests"] for w in windows)
    seconds = sum(w["seconds"] for w in windows)
    pooled = {"requests": requests, "seconds": seconds,
              "errors_total": sum(w["errors_total"] for w in windows),
              "rps": requests / seconds if seconds else 0.0,
              "inferences_per_s": sum(w["inferences_per_s"] * w["seconds"] for w in windows)
              / seconds if seconds else 0.0}
    for key in ("p50_ms", "p95_ms", "p99_ms"):
        pooled[key] = float(np.median([w[key] for w in windows]))
    for key in {k for w in windows for k in w if k.endswith("_cpu_us_per_request")}:
        spent = [w[key] * w["requests"] for w in windows if w.get(key) is not None]
        pooled[key] = sum(spent) / requests if spent and requests else None
    return pooled


# Below this many pairs a percentile bootstrap of the median is little more than the
# values' min-max: only the range is reported then, named as a range.
MIN_PAIRS_FOR_INTERVAL = 8


def median_interval(values: list[float], seed: int = 0) -> tuple[float, float]:
    """Bootstrap 95 % interval of the median (percentile method, fixed seed)."""
    data = np.asarray(values, dtype=float)
    if data.size < 2:
        return float(data[0]), float(data[0])
    rng = np.random.default_rng(seed)
    medians = np.median(rng.choice(data, size=(BOOTSTRAP_RESAMPLES, data.size)), axis=1)
    low, high = np.percentile(medians, [2.5, 97.5])
    return float(low), float(high)


def summarize_pairs(names: tuple[str, str], pairs: list[dict]) -> dict:
    """Median over pairs of B/A throughput and of B−A CPU per request, with intervals;
    each side's figures as the median over pairs."""
    first, second = names
    ratios = [pair["ratio"] for pair in pairs]
    enough = len(pairs) >= MIN_PAIRS_FOR_INTERVAL
    summary: dict = {"pairs": len(pairs), "rps_ratios": ratios,
                     "rps_ratio_median": float(np.median(ratios)),
                     "rps_ratio_range": [min(ratios), max(ratios)]}
    if enough:
        summary["rps_ratio_ci95"] = list(median_interval(ratios))
    added = [pair[second]["server_cpu_us_per_request"] - pair[first]["server_cpu_us_per_request"]
             for pair in pairs if pair[first].get("server_cpu_us_per_request") is not None
             and pair[second].get("server_cpu_us_per_request") is not None]
    if added:
        summary.update(server_cpu_us_added=added,
                       server_cpu_us_added_median=float(np.median(added)),
                       server_cpu_us_added_range=[min(added), max(added)])
        if enough:
            summary["server_cpu_us_added_ci95"] = list(median_interval(added))
    for name in names:
        summary[name] = median_run([pair[name] for pair in pairs],
                                   summed=("requests", "errors_total"))
    return summary


def compare_sides(sides: tuple[Side, Side], *, model: str, load: dict, pairs: int,
                  rounds: int, duration_s: float, warmup_s: float,
                  server_cpus: set[int] | None = None,
                  probe: Callable[[Popen], Probe] | None = None) -> dict:
    """``pairs`` fresh pairs of servers, each side measured for ``duration_s`` in ``rounds``
    alternating windows. ``load`` holds the load generator's concurrency, payload and batch;
    ``probe(process)`` gives the CPU probe for a server."""
    first, second = sides
    window_s = duration_s / rounds
    records: list[dict] = []
    for _ in range(pairs):
        windows: dict[str, list[dict]] = {first.name: [], second.name: []}
        with started(first, model, server_cpus) as (url_a, proc_a), \
                started(second, model, server_cpus) as (url_b, proc_b):
            servers = {first.name: (url_a, proc_a), second.name: (url_b, proc_b)}
            sent = {name: run_against(url, model=model, duration_s=warmup_s, warmup_s=0.0,
                                      **load)["sent_total"]
                    for name, (url, _) in servers.items()}
            for index in range(rounds):
                order = (first, second) if index % 2 == 0 else (second, first)
                for side in order:
                    url, process = servers[side.name]
                    windows[side.name].append(run_against(
                        url, model=model, duration_s=window_s, warmup_s=WINDOW_WARMUP_S,
                        cpu_probe=probe(process) if probe else None, **load))
        record = {name: _pooled(found) for name, found in windows.items()}
        for name, found in windows.items():  # every request each server answered
            record[name]["sent_total"] = sent[name] + sum(w["sent_total"] for w in found)
        base = record[first.name]["rps"]
        record["ratio"] = record[second.name]["rps"] / base if base else 0.0
        record["windows"] = windows
        records.append(record)
    summary = summarize_pairs((first.name, second.name), records)
    summary["rounds"] = rounds
    summary["runs"] = records
    return summary
