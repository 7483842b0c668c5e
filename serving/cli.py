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
    repeat: Annotated[int, typer.Option(min=1, help="--compare runs; medians reported")] = 1,
    output: Annotated[Path | None, typer.Option(help="Write the result as JSON here")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table",
) -> None:
    """Drive a server with bounded load and report req/s, latency percentiles and errors."""
    from serving.bench import report  # noqa: PLC0415
    from serving.bench.compare import run_repeated  # noqa: PLC0415
    from serving.bench.loadgen import run_against  # noqa: PLC0415

    if payload not in ("json", "binary"):
        raise typer.BadParameter("--payload must be json or binary")
    if compare:
        result = run_repeated(repeat, model=model, concurrency=concurrency, payload=payload,
                             duration_s=duration, warmup_s=warmup, batch=batch)
    else:
        result = run_against(url, model=model, concurrency=concurrency, payload=payload,
                             duration_s=duration, warmup_s=warmup, batch=batch)
    report.emit(result, fmt=fmt, output=output)
    if result.get("errors_total", 0) and not compare:
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


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
