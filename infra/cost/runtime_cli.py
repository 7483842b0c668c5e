"""``aiinfra cost STACK --per-1m [--from-prometheus URL]``: the preview's cost per 1M inferences,
and, for an operator who can reach the stack's Prometheus, the measured figures beside it.

The estimate prices the expected node mix from the catalogue (``infra.cost.inference``) at a
throughput per node from ``--bench`` / ``--throughput-per-node``, or else at the throughput
Prometheus measured (inferences per second per serving GPU over the last hour). The measured
side is what the recording rules of ``infra.cost.runtime`` hold: per model
``aiinfra:model_cost_usd_per_million_inferences`` and ``aiinfra:model_cost_usd_per_hour``, per
pool the idle GPU cost. Prometheus is read through its HTTP API (``/api/v1/query``).
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from infra.cost.runtime import IDLE_COST, MODEL_COST, PER_MILLION, SERVING_NAMESPACE

MEASURED_THROUGHPUT = (
    f'sum(rate(aiinfra_inferences_total{{namespace="{SERVING_NAMESPACE}"}}[1h])) / '
    f'sum(kube_pod_container_resource_requests{{resource="nvidia_com_gpu", '
    f'namespace="{SERVING_NAMESPACE}"}})')


class PrometheusError(RuntimeError):
    """Prometheus could not be read or answered with an error."""


def query(url: str, expr: str, *, timeout: float = 10.0) -> list[tuple[dict, float]]:
    """An instant query: ``[(labels, value), ...]``."""
    target = f"{url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    try:
        with urllib.request.urlopen(target, timeout=timeout) as response:  # noqa: S310
            body = json.load(response)
    except (urllib.error.URLError, OSError, json.JSONDecodeError) as exc:
        raise PrometheusError(f"cannot query Prometheus at {url}: {exc}") from None
    if body.get("status") != "success":
        raise PrometheusError(f"Prometheus refused {expr!r}: {body.get('error', body)}")
    data = body.get("data") or {}
    if data.get("resultType") != "vector":
        raise PrometheusError(f"{expr!r}: expected a vector, got {data.get('resultType')}")
    return [(item.get("metric") or {}, float(item["value"][1])) for item in data["result"]]


@dataclass
class Measured:
    url: str
    per_million: dict[str, float]
    hourly: dict[str, float]
    idle_hourly: dict[str, float]
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"prometheus": self.url, "usd_per_million_by_model": self.per_million,
                "usd_per_hour_by_model": self.hourly, "idle_gpu_usd_per_hour_by_pool":
                    self.idle_hourly, "notes": self.notes}


def measure(url: str) -> Measured:
    def by(expr: str, label: str) -> dict[str, float]:
        return {labels.get(label, ""): value for labels, value in query(url, expr)
                if value == value}  # NaN (no inferences yet) is no figure

    measured = Measured(url, by(PER_MILLION, "model"), by(MODEL_COST, "model"),
                        by(IDLE_COST, "pool"))
    if not measured.per_million:
        measured.notes.append(f"no {PER_MILLION} series: are the aiinfra-cost rules loaded "
                              "and is traffic flowing?")
    return measured


def measured_throughput_per_gpu(url: str) -> float | None:
    values = [v for _, v in query(url, MEASURED_THROUGHPUT) if v == v and v > 0]
    return values[0] if values else None


def run_per_million(stack: str, *, fmt: str, usage_path: Path | None, bench: Path | None,
                    throughput: list[str] | None, prometheus_url: str | None,
                    project_dir: Path | None) -> int:
    from infra.config import ConfigError  # noqa: PLC0415
    from infra.cost.catalogue import CatalogueError  # noqa: PLC0415
    from infra.cost.estimator import estimate  # noqa: PLC0415
    from infra.cost.inference import (  # noqa: PLC0415
        ThroughputError,
        parse_throughput,
        throughput_from_bench,
        unit_costs,
    )
    from infra.cost.usage import UsageError, load_usage  # noqa: PLC0415
    from infra.render import render  # noqa: PLC0415

    if bench is None and not throughput and prometheus_url is None:
        return _error("--per-1m needs a throughput: --bench FILE, --throughput-per-node N, "
                      "or --from-prometheus URL (measured)")
    try:
        report = estimate(render(stack, project_dir), usage=load_usage(stack, usage_path))
        measured = measure(prometheus_url) if prometheus_url else None
        if throughput:
            figures: float | dict[str, float] = parse_throughput(throughput)
            source = f"stated: {', '.join(throughput)} inferences/s per node"
        elif bench is not None:
            figures = throughput_from_bench(bench)
            source = f"{bench}: {figures:,.1f} inferences/s per node"
        else:
            per_gpu = measured_throughput_per_gpu(prometheus_url)
            if per_gpu is None:
                raise ThroughputError(f"{prometheus_url}: no measured inference rate; give "
                                      "--bench or --throughput-per-node")
            figures = {pool.name: per_gpu * pool.gpus_per_node for pool in report.pools}
            source = f"measured: {per_gpu:,.1f} inferences/s per GPU (Prometheus, last hour)"
        estimated = unit_costs(report, figures, source)
    except (ConfigError, FileNotFoundError, CatalogueError, UsageError, ThroughputError,
            PrometheusError) as exc:
        return _error(str(exc))
    if fmt == "json":
        print(json.dumps({"stack": stack, "estimate": estimated.as_dict(),
                          "measured": measured.as_dict() if measured else None}, indent=2))
    elif fmt == "markdown":
        print(comparison_markdown(stack, estimated, measured), end="")
    else:
        from infra.cost.report import console_for, print_unit_costs  # noqa: PLC0415

        console = console_for(None)
        print_unit_costs(estimated, console)
        if measured is not None:
            for line in comparison_lines(estimated.blended, measured):
                console.print(line, highlight=False)
    return 0


def _error(message: str) -> int:
    print(message, file=sys.stderr)
    return 2


def _usd(value: float | None) -> str:
    from infra.cost.report import usd_fine  # noqa: PLC0415

    return usd_fine(value)


def _ratio(measured: float, estimate: float | None) -> str:
    return f"{measured / estimate:.2f}× the estimate" if estimate else "no estimate"


def comparison_lines(blended: float | None, measured: Measured) -> list[str]:
    out = [f"measured ({measured.url}) against the estimate {_usd(blended)} per 1M "
           "(blended):"]
    for model, value in sorted(measured.per_million.items()):
        out.append(f"  {model}: {_usd(value)} per 1M, {_usd(measured.hourly.get(model))}/h "
                   f"of GPU, {_ratio(value, blended)}")
    for pool, value in sorted(measured.idle_hourly.items()):
        out.append(f"  idle GPUs in {pool}: {_usd(value)}/h")
    out += [f"note: {note}" for note in measured.notes]
    return out


def comparison_markdown(stack: str, estimated, measured: Measured | None) -> str:
    out = [f"### aiinfra cost per 1M inferences · `{stack}`", "",
           f"Estimate ({estimated.source}): **{_usd(estimated.blended)}** per 1M, blended "
           "over the expected node mix.", "",
           "| GPU pool | Capacity | Throughput/node | Estimate per 1M |", "|---|---|---:|---:|"]
    out += [f"| {p.name} | {p.capacity} | {p.throughput:,.1f}/s | {_usd(p.per_million)} |"
            for p in estimated.pools]
    if measured is not None:
        out += ["", f"Measured by the `aiinfra-cost` recording rules ({measured.url}):", "",
                "| Model | Measured per 1M | GPU $/h | Against the estimate |",
                "|---|---:|---:|---:|"]
        out += [f"| {model} | {_usd(value)} | {_usd(measured.hourly.get(model))} | "
                f"{_ratio(value, estimated.blended)} |"
                for model, value in sorted(measured.per_million.items())]
        if measured.idle_hourly:
            out += ["", "Idle GPU cost: " + ", ".join(
                f"{pool} {_usd(v)}/h" for pool, v in sorted(measured.idle_hourly.items()))]
        if measured.notes:
            out += ["", *(f"Note: {n}" for n in measured.notes)]
    return "\n".join(out) + "\n"
