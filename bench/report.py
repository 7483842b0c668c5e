"""Printing bench results as a table or JSON."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table


def _cpu(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _load_row(table: Table, name: str, run: dict, cpu: bool) -> None:
    cells = [name, f"{run['rps']:.1f}", f"{run['inferences_per_s']:.1f}",
             f"{run['p50_ms']:.2f}", f"{run['p95_ms']:.2f}", f"{run['p99_ms']:.2f}",
             str(run["errors_total"])]
    if cpu:
        cells += [_cpu(run.get("server_cpu_us_per_request")),
                  _cpu(run.get("postgres_cpu_us_per_request"))]
    table.add_row(*cells)


def _spread(paired: dict, key: str, fmt: str) -> str:
    """The 95 % interval when there are enough pairs for one, else the plain range."""
    if f"{key}_ci95" in paired:
        low, high = paired[f"{key}_ci95"]
        return f"95 % CI {low:{fmt}} to {high:{fmt}}"
    low, high = paired[f"{key}_range"]
    return f"range {low:{fmt}} to {high:{fmt}}"


def _paired_line(label: str, paired: dict) -> str:
    line = (f"{label}: req/s ratio {paired['rps_ratio_median']:.3f} "
            f"({_spread(paired, 'rps_ratio', '.3f')}; {paired['pairs']} pair(s) × "
            f"{paired['rounds']} rounds: {', '.join(f'{r:.3f}' for r in paired['rps_ratios'])})")
    if "server_cpu_us_added_median" in paired:
        line += (f"; server CPU {paired['server_cpu_us_added_median']:+.1f} µs/request "
                 f"({_spread(paired, 'server_cpu_us_added', '+.1f')})")
    return line


def _transports(console: Console, result: dict) -> None:
    table = Table(title=f"{result['model']} · {result['batch']} row(s)/request · "
                        f"{result['concurrency']} in flight · median of {result['rounds']} "
                        f"interleaved round(s) · load from {result['generator']}")
    for column in ("side", "conns × streams", "req/s", "p50 ms", "p99 ms",
                   "request bytes", "response bytes", "errors"):
        table.add_column(column, justify="left" if column == "side" else "right",
                         no_wrap=True)
    for name, side in result["sides"].items():
        table.add_row(name, f"{side['connections']} × {side['streams']}", f"{side['rps']:.1f}",
                      f"{side['p50_ms']:.2f}", f"{side['p99_ms']:.2f}",
                      str(side["request_body_bytes"]),
                      f"{side['response_body_bytes'] + side['response_header_bytes']:.0f}",
                      str(side["errors_total"]))
    console.print(table)
    for key, value in result["ratios"].items():
        if value is not None:
            console.print(f"{key}: {value:.2f}")


def emit(result: dict, *, fmt: str = "table", output: Path | None = None) -> None:
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(result, indent=2) + "\n")
    if fmt == "json":
        print(json.dumps(result, indent=2))
        return
    console = Console()
    if not console.is_terminal:  # a pipe or a file: no terminal width to fit
        console = Console(width=120)
    if "sides" in result:  # --transports
        _transports(console, result)
        return
    if "summary" in result:  # --overload: the figures its targets are stated in
        console.print(f"{result['model']} · {result['payload']} · {result['overload']}x "
                      f"saturation ({result['concurrency']} in flight) · deadline "
                      f"{result['deadline_ms']:g} ms · {len(result['rounds'])} round(s)")
        for key, value in result["summary"].items():
            console.print(f"{key}: {value:.4g}" if isinstance(value, float) else
                          f"{key}: {value}")
        return
    runs = f" · median of {result['repeat']} runs" if result.get("repeat", 1) > 1 else ""
    if result.get("generator"):
        runs += f" · load from {result['generator']}"
    table = Table(title=f"{result['model']} · {result['payload']} · concurrency "
                        f"{result['concurrency']} · {result.get('batch', 1)} row(s)/request{runs}")
    cpu = "predlog_cpu" in result
    columns = ["run", "req/s", "inferences/s", "p50 ms", "p95 ms", "p99 ms", "errors"]
    if cpu:
        columns += ["server CPU µs/req", "postgres CPU µs/req"]
    for column in columns:
        table.add_column(column, justify="right" if column != "run" else "left")
    if "ceiling" in result:
        ceiling = result["ceiling"]
        table.add_row(f"in-process, batch {ceiling['batch']}", "-",
                      f"{ceiling['inferences_per_s']:.1f}", *["-"] * (len(columns) - 3))
    workers = sorted(k for k in result if k.startswith("aiinfra_w"))
    for name in ("floor", "naive", "naive_tuned", "litserve", "kserve", "aiinfra", *workers,
                 "baseline", "predlog", "cache_hit", "cache_hit_redis"):
        if name in result:
            _load_row(table, name, result[name], cpu)
    if "rps" in result:
        _load_row(table, result.get("target", "server"), result, cpu)
    console.print(table)
    for section, label in (("predlog_paired", "log on vs off"),
                           ("cache_hit_paired", "in-process cache hits vs compute"),
                           ("cache_hit_redis_paired", "Redis cache hits vs compute"),
                           ("control", "control, log off on both sides")):
        if section in result:
            console.print(_paired_line(label, result[section]))
    for section in ("ratios", "predlog_cpu"):
        for key, value in result.get(section, {}).items():
            if value is not None:
                console.print(f"{key}: {value:.2f}" if section == "ratios"
                              else f"predlog {key}: {value:.2f}")
