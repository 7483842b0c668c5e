"""The ``aiinfra`` command line."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="aiinfra: serve models on GPUs at the lowest cost.")


def _export(name: str, value: object) -> None:
    """Options become AIINFRA_* variables so that every uvicorn worker reads the same settings."""
    if value is not None:
        os.environ[f"AIINFRA_{name}"] = value if isinstance(value, str) else str(value)


@app.command()
def serve(
    repository: Annotated[Path | None, typer.Option(
        "--repository", "-r", help="Model repository (default: the demo repository)")] = None,
    host: Annotated[str | None, typer.Option(help="Bind address (AIINFRA_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (AIINFRA_PORT, default 8000)")] = None,
    workers: Annotated[int | None, typer.Option(help="uvicorn worker processes")] = None,
    load: Annotated[list[str] | None, typer.Option(
        help="Model (glob) to load before ready; repeat. Default: all")] = None,
) -> None:
    """Serve the Open Inference Protocol on a model repository."""
    import uvicorn  # noqa: PLC0415 - keep `aiinfra --help` fast

    from serving.demo import build_demo_repository  # noqa: PLC0415
    from serving.logs import log_config  # noqa: PLC0415
    from serving.settings import Settings  # noqa: PLC0415

    _export("MODEL_REPOSITORY", str(repository) if repository else None)
    _export("HOST", host)
    _export("PORT", port)
    _export("WORKERS", workers)
    if load is not None:
        import json  # noqa: PLC0415

        _export("LOAD_MODELS", json.dumps(load))
    try:
        settings = Settings()
    except ValueError as exc:
        typer.secho(f"invalid settings: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from None
    if settings.model_repository is None:
        build_demo_repository(settings.demo_repository)
    multiproc = None
    if settings.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiproc = tempfile.mkdtemp(prefix="aiinfra-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = multiproc
    # uvicorn drains on SIGTERM, then restores the handler it found and raises the signal
    # again; with the default handler that would turn a clean drain into death by SIGTERM.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        uvicorn.run(
            "serving.app:create_app", factory=True, host=settings.host, port=settings.port,
            workers=settings.workers, log_config=log_config(
                settings.log_level, settings.log_format, settings.access_log),
            access_log=settings.access_log, timeout_graceful_shutdown=settings.grace_period_s,
            loop="auto", http="auto", server_header=False, proxy_headers=False,
        )
    finally:
        if multiproc:
            shutil.rmtree(multiproc, ignore_errors=True)


@app.command()
def bench(
    url: Annotated[str, typer.Option(help="Server to drive")] = "http://127.0.0.1:8000",
    model: Annotated[str, typer.Option(help="Model to call")] = "mlp",
    concurrency: Annotated[int, typer.Option(min=1, help="Requests in flight")] = 32,
    payload: Annotated[str, typer.Option(help="json or binary tensors")] = "json",
    duration: Annotated[float, typer.Option(min=0.5, help="Seconds of measured load")] = 10.0,
    warmup: Annotated[float, typer.Option(min=0, help="Seconds of unmeasured load first")] = 2.0,
    batch: Annotated[int, typer.Option(min=1, help="Rows per request")] = 1,
    compare: Annotated[bool, typer.Option(
        "--compare", help="Side by side: in-process ceiling, naive server, aiinfra")] = False,
    data_plane: Annotated[bool, typer.Option(
        "--data-plane", help="Side by side: compute path, prediction log on, cache hits "
        "(in-process, Redis)")] = False,
    database_url: Annotated[str | None, typer.Option(
        help="--data-plane's Postgres (default: AIINFRA_DATABASE_URL, else a throwaway one)",
        show_default=False)] = None,
    redis_url: Annotated[str | None, typer.Option(
        help="--data-plane's Redis (default: AIINFRA_REDIS_URL, else a throwaway one)",
        show_default=False)] = None,
    database_nice: Annotated[int, typer.Option(
        min=0, max=19, help="--data-plane: run the throwaway Postgres at this nice level "
        "(19: it takes only idle CPU, as a separate database host would)")] = 0,
    repeat: Annotated[int, typer.Option(
        min=1, help="--compare runs, --data-plane pairs of servers; medians reported")] = 1,
    rounds: Annotated[int, typer.Option(
        min=1, help="--data-plane: alternating windows per pair (--duration split among "
        "them)")] = 4,
    server_cpus: Annotated[str | None, typer.Option(
        help="--data-plane: pin each server to these CPUs (e.g. 0 or 0-1)",
        show_default=False)] = None,
    client_cpus: Annotated[str | None, typer.Option(
        help="--data-plane: pin the load generator and throwaway stores to these CPUs",
        show_default=False)] = None,
    control: Annotated[bool, typer.Option(
        "--control", help="--data-plane: also compare two log-off servers (noise floor)")
    ] = False,
    output: Annotated[Path | None, typer.Option(help="Write the result as JSON here")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table",
    gpu_suite: Annotated[bool, typer.Option(
        "--gpu-suite", help="ResNet in-process, served and cold-start suite; JSON (--output, "
        "default gpu-suite.json) and markdown beside it")] = False,
    quick: Annotated[bool, typer.Option("--quick", help="--gpu-suite: small CPU sizes")] = False,
    batch_sizes: Annotated[str | None, typer.Option(
        help="--gpu-suite batch sizes, e.g. 1,8,16,32,64")] = None,
) -> None:
    """Drive a server with bounded load and report req/s, latency percentiles and errors."""
    if gpu_suite:
        import shlex  # noqa: PLC0415

        from serving.bench.gpu_suite import options_for, run_suite, to_markdown  # noqa: PLC0415

        try:
            options = options_for(quick=quick, batch_sizes=batch_sizes,
                                  command=shlex.join(["aiinfra", *sys.argv[1:]]))
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        typer.echo(to_markdown(run_suite(options, output or Path("gpu-suite.json"))))
        return
    from serving.bench import report  # noqa: PLC0415
    from serving.bench.compare import run_repeated  # noqa: PLC0415
    from serving.bench.loadgen import run_against  # noqa: PLC0415

    if payload not in ("json", "binary"):
        raise typer.BadParameter("--payload must be json or binary")
    if compare and data_plane:
        raise typer.BadParameter("--compare and --data-plane are separate runs: pick one")
    if data_plane:
        from serving.bench.dataplane import run_data_plane  # noqa: PLC0415
        from serving.bench.paired import parse_cpus  # noqa: PLC0415

        try:
            pinning = {"server_cpus": parse_cpus(server_cpus),
                       "client_cpus": parse_cpus(client_cpus)}
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        result = run_data_plane(model=model, concurrency=concurrency, payload=payload,
                                duration_s=duration, warmup_s=warmup, batch=batch,
                                database_url=database_url, redis_url=redis_url,
                                database_nice=database_nice, pairs=repeat, rounds=rounds,
                                control=control, **pinning)
    elif compare:
        result = run_repeated(repeat, model=model, concurrency=concurrency, payload=payload,
                             duration_s=duration, warmup_s=warmup, batch=batch)
    else:
        result = run_against(url, model=model, concurrency=concurrency, payload=payload,
                             duration_s=duration, warmup_s=warmup, batch=batch)
    report.emit(result, fmt=fmt, output=output)
    if result.get("errors_total", 0) and not (compare or data_plane):
        raise typer.Exit(1)


@app.command()
def preview(
    stack: Annotated[str, typer.Argument(help="dev, staging or prod")] = "dev",
    fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table",
    manifests: Annotated[Path | None, typer.Option(
        help="Write every Kubernetes object as YAML into this folder")] = None,
    project_dir: Annotated[Path | None, typer.Option(
        help="Folder holding Pulumi.yaml (default: here)")] = None,
) -> None:
    """Render a stack offline (Pulumi mocks, no cloud) and print its resource graph."""
    from infra.config import ConfigError  # noqa: PLC0415 - needs the infra extra
    from infra.preview import print_json, print_table, write_manifests  # noqa: PLC0415
    from infra.render import render  # noqa: PLC0415

    if fmt not in ("table", "json"):
        raise typer.BadParameter("--format must be table or json")
    try:
        graph = render(stack, project_dir)
    except (ConfigError, FileNotFoundError) as exc:
        typer.secho(str(exc), err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from None
    if manifests is not None:
        written = write_manifests(graph, manifests)
        typer.echo(f"wrote {len(written)} manifests to {manifests}", err=True)
    if fmt == "json":
        print_json(graph)
    else:
        print_table(graph)
        from infra.cost.cli import print_preview_totals  # noqa: PLC0415

        print_preview_totals(graph)
        from policies.cli import print_summary  # noqa: PLC0415

        print_summary(graph)


predlog_app = typer.Typer(no_args_is_help=True, help="The prediction log in Postgres.")
app.add_typer(predlog_app, name="predlog")


@predlog_app.command("stats")
def predlog_stats(
    model: Annotated[str | None, typer.Option(help="Only this model")] = None,
    since: Annotated[str, typer.Option(help="Window: 90s, 15m, 1h, 7d, 2w")] = "1h",
    database_url: Annotated[str | None, typer.Option(
        help="postgresql://… (default: AIINFRA_DATABASE_URL)", show_default=False)] = None,
    fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table",
) -> None:
    """Requests, error rate and p50/p95 latency per model, computed in Postgres."""
    import json  # noqa: PLC0415

    import psycopg  # noqa: PLC0415
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    from serving.predlog.stats import parse_since, query_stats  # noqa: PLC0415
    from serving.settings import Settings  # noqa: PLC0415

    if fmt not in ("table", "json"):
        raise typer.BadParameter("--format must be table or json")
    try:
        window = parse_since(since)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if database_url is None:
        try:
            database_url = Settings().database_dsn
        except ValueError as exc:
            typer.secho(f"invalid settings: {exc}", err=True, fg=typer.colors.RED)
            raise typer.Exit(2) from None
    if not database_url:
        typer.secho("no database: set AIINFRA_DATABASE_URL or pass --database-url", err=True,
                    fg=typer.colors.RED)
        raise typer.Exit(2)
    try:
        rows = query_stats(database_url, since=window, model=model)
    except psycopg.Error as exc:
        typer.secho(f"prediction log query failed: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None
    if fmt == "json":
        print(json.dumps({"since": since, "model": model, "models": rows}, indent=2))
        return
    table = Table(title=f"prediction log · last {since}" + (f" · {model}" if model else ""))
    for column in ("model", "requests", "errors", "error rate", "p50 ms", "p95 ms",
                   "cache hits"):
        table.add_column(column, justify="left" if column == "model" else "right")

    def number(value: float | None, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    for row in rows:
        table.add_row(row["model"], str(row["requests"]), str(row["errors"]),
                      number(row["error_rate"], ".2%"), number(row["p50_ms"], ".2f"),
                      number(row["p95_ms"], ".2f"), number(row["cache_hit_rate"], ".1%"))
    Console().print(table)


@app.command()
def cost(
    stack: Annotated[str, typer.Argument(help="dev, staging or prod")] = "dev",
    fmt: Annotated[str, typer.Option("--format", help="table, json or markdown")] = "table",
    diff: Annotated[str | None, typer.Option(
        "--diff", help="Baseline: another stack, or a git ref of this stack's config")] = None,
    usage: Annotated[Path | None, typer.Option(
        help="Usage file (default: infra/data/usage-STACK.yaml)")] = None,
    strict: Annotated[bool, typer.Option(
        "--strict", help="Exit 1 when any resource is unpriced")] = False,
    bench: Annotated[Path | None, typer.Option(
        help="JSON from `aiinfra bench --output`: cost per 1M inferences")] = None,
    throughput_per_node: Annotated[list[str] | None, typer.Option(
        help="Inferences/s one GPU node serves: N, or POOL=N (repeat)")] = None,
    project_dir: Annotated[Path | None, typer.Option(
        help="Folder holding Pulumi.yaml (default: here)")] = None,
) -> None:
    """Monthly cost of a stack (min / expected / max) from the price catalogue, offline."""
    from infra.cost.cli import run_cost  # noqa: PLC0415 - needs the infra extra

    raise typer.Exit(run_cost(stack, fmt=fmt, diff=diff, usage_path=usage, strict=strict,
                              bench=bench, throughput=throughput_per_node,
                              project_dir=project_dir))


@app.command()
def check(
    stack: Annotated[str, typer.Argument(help="dev, staging or prod")] = "dev",
    fmt: Annotated[str, typer.Option("--format", help="table, json or sarif")] = "table",
    project_dir: Annotated[Path | None, typer.Option(
        help="Folder holding Pulumi.yaml (default: here)")] = None,
) -> None:
    """Run the policy pack on a stack offline; exit 1 on any mandatory violation."""
    from policies.cli import FORMATS, run_check  # noqa: PLC0415 - needs the infra extra

    if fmt not in FORMATS:
        raise typer.BadParameter(f"--format must be one of {', '.join(FORMATS)}")
    raise typer.Exit(run_check(stack, fmt=fmt, project_dir=project_dir))


prices_app = typer.Typer(no_args_is_help=True, help="The price catalogue behind `cost`.")
app.add_typer(prices_app, name="prices")


@prices_app.command("refresh")
def prices_refresh(
    region: Annotated[str, typer.Option(help="AWS region to price")] = "us-east-1",
    output: Annotated[Path | None, typer.Option(
        help="Catalogue to write (default: infra/data/prices-REGION.yaml)")] = None,
    spot_days: Annotated[int, typer.Option(min=1, help="Days of spot history to average")] = 7,
) -> None:
    """Rebuild instance prices from the AWS Price List API and spot price history (boto3)."""
    from infra.cost.cli import run_prices_refresh  # noqa: PLC0415

    raise typer.Exit(run_prices_refresh(region, output=output, spot_days=spot_days))


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
