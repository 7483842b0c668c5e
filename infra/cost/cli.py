"""The work behind ``aiinfra cost``, ``aiinfra prices refresh`` and preview's cost line.

``infra/cli.py`` declares the options and calls these; each returns the exit code:

- 0: fine (and, with ``--diff``, the change is within its thresholds);
- 1: over budget, ``--strict`` with unpriced resources, or (``--diff``) the increase is above
  the fail threshold;
- 2: bad input;
- 3: (``--diff``) the increase is above the warn threshold, and nothing above fails.
"""

from __future__ import annotations

import sys
from pathlib import Path

FORMATS = ("table", "json", "markdown")


def _error(message: str) -> int:
    print(message, file=sys.stderr)
    return 2


def run_cost(stack: str, *, fmt: str = "table", diff: str | None = None,
             usage_path: Path | None = None, strict: bool = False, bench: Path | None = None,
             throughput: list[str] | None = None, project_dir: Path | None = None,
             warn_above: str | None = None, fail_above: str | None = None,
             per_1m: bool = False, from_prometheus: str | None = None) -> int:
    from infra.config import ConfigError  # noqa: PLC0415
    from infra.cost import check_budget  # noqa: PLC0415
    from infra.cost.catalogue import CatalogueError  # noqa: PLC0415
    from infra.cost.diff import (  # noqa: PLC0415
        DiffError,
        baseline_graph,
        diff_json,
        diff_markdown,
        diff_reports,
        print_diff,
    )
    from infra.cost.estimator import estimate  # noqa: PLC0415
    from infra.cost.inference import (  # noqa: PLC0415
        ThroughputError,
        parse_throughput,
        throughput_from_bench,
        unit_costs,
    )
    from infra.cost.report import as_json, as_markdown, print_table  # noqa: PLC0415
    from infra.cost.thresholds import Threshold, ThresholdError, assess  # noqa: PLC0415
    from infra.cost.usage import UsageError, load_usage  # noqa: PLC0415
    from infra.render import render  # noqa: PLC0415

    if fmt not in FORMATS:
        return _error(f"--format must be one of {', '.join(FORMATS)}")
    if diff is not None and (bench is not None or throughput):
        return _error("--diff compares monthly costs; run cost per 1M inferences without it")
    if diff is None and (warn_above or fail_above):
        return _error("--warn-above and --fail-above judge a change: give --diff REF")
    if per_1m and diff is not None:
        return _error("--per-1m prices inferences, --diff a change: run them apart")
    if from_prometheus is not None and not per_1m:
        return _error("--from-prometheus compares cost per 1M inferences: add --per-1m")
    try:
        warn = Threshold.parse(warn_above) if warn_above else None
        fail = Threshold.parse(fail_above) if fail_above else None
    except ThresholdError as exc:
        return _error(str(exc))
    if per_1m:
        from infra.cost.runtime_cli import run_per_million  # noqa: PLC0415

        return run_per_million(stack, fmt=fmt, usage_path=usage_path, bench=bench,
                               throughput=throughput, prometheus_url=from_prometheus,
                               project_dir=project_dir)
    try:
        graph = render(stack, project_dir)
        usage = load_usage(stack, usage_path)
        report = estimate(graph, usage=usage)
        per_million = None
        if bench is not None or throughput:
            figures: float | dict[str, float] = (
                parse_throughput(throughput) if throughput else throughput_from_bench(bench))
            source = (f"stated: {', '.join(throughput)} inferences/s per node" if throughput
                      else f"{bench}: {figures:,.1f} inferences/s per node")
            per_million = unit_costs(report, figures, source)
        if diff is not None:
            base_graph, base_label = baseline_graph(diff, stack, project_dir, render)
            base_usage = usage if base_graph.stack == stack else load_usage(base_graph.stack)
            base = estimate(base_graph, usage=base_usage)
            configured = graph.config.cost_thresholds
            warn = warn or (Threshold.parse(configured.warn_above)
                            if configured.warn_above else None)
            fail = fail or (Threshold.parse(configured.fail_above)
                            if configured.fail_above else None)
            verdict = assess(base.total.expected, report.total.expected, warn=warn, fail=fail)
            comparison = diff_reports(base, report, base_label=base_label,
                                      new_label=f"stack {stack}", verdict=verdict)
    except (ConfigError, FileNotFoundError, CatalogueError, UsageError, DiffError,
            ThroughputError) as exc:
        return _error(str(exc))
    if diff is not None:
        if fmt == "json":
            print(diff_json(comparison))
        elif fmt == "markdown":
            print(diff_markdown(comparison), end="")
        else:
            print_diff(comparison)
    elif fmt == "json":
        print(as_json(report, per_million))
    elif fmt == "markdown":
        print(as_markdown(report, per_million), end="")
    else:
        print_table(report, unit_costs=per_million)
    code = 0
    if diff is not None and verdict.level != "ok":
        print(f"{'error' if verdict.level == 'over' else 'warning'}: cost change "
              f"{verdict.change()}, {verdict.reason()}", file=sys.stderr)
        code = verdict.exit_code
    budget = check_budget(graph, usage=usage)
    if budget.over:
        print(f"error: {budget.message}", file=sys.stderr)
        code = 1
    if strict and report.unpriced:
        print(f"error: {len(report.unpriced)} unpriced item(s) (--strict): "
              + ", ".join(li.name for li in report.unpriced), file=sys.stderr)
        code = 1
    return code


def print_preview_totals(graph) -> None:
    """One line under ``aiinfra preview``'s table: the cost totals (min / expected / max)."""
    from infra.cost.catalogue import CatalogueError  # noqa: PLC0415
    from infra.cost.estimator import estimate  # noqa: PLC0415
    from infra.cost.report import totals_line  # noqa: PLC0415
    from infra.cost.usage import UsageError, load_usage  # noqa: PLC0415

    try:
        report = estimate(graph, usage=load_usage(graph.stack))
    except (CatalogueError, UsageError) as exc:  # the preview itself stands without prices
        print(f"cost: not available ({exc})")
        return
    print(totals_line(report) + f"; details: aiinfra cost {graph.stack}")


def run_prices_refresh(region: str, *, output: Path | None = None, spot_days: int = 7) -> int:
    from infra.cost.catalogue import (  # noqa: PLC0415
        CatalogueError,
        catalogue_path,
        load_catalogue,
        read_catalogue,
        write_catalogue,
    )
    from infra.cost.refresh import clients, refresh_catalogue  # noqa: PLC0415

    target = output or catalogue_path(region)
    try:
        base = read_catalogue(target) if target.is_file() else load_catalogue("us-east-1")
    except CatalogueError as exc:
        return _error(str(exc))
    try:
        import botocore.exceptions  # noqa: PLC0415
    except ImportError:
        return _error("prices refresh needs boto3: pip install 'aiinfra[infra]'")
    try:
        pricing, ec2 = clients(region)
        fresh = refresh_catalogue(region, base=base, pricing=pricing, ec2=ec2,
                                  spot_days=spot_days)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        return _error(f"AWS: {exc}")
    header = (f"# Price catalogue for {region}, written by `aiinfra prices refresh`. Every price "
              "carries its date and source;\n# see infra/cost/catalogue.py. A missing key "
              "means unpriced, never $0.")
    write_catalogue(fresh, target, header)
    print(f"wrote {len(fresh.prices)} prices to {target}")
    return 0
