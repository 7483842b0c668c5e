"""The serving runtime's commands: ``serve`` and ``predlog stats``.

Mounted into the one ``aiinfra`` command by ``aiinfra.cli``; ``python -m serving.cli serve``
runs the same command where only the runtime is installed.
"""

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
                  help="The serving runtime: serve models, read the prediction log.")


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
    from serving.metrics import prepare_multiprocess_dir  # noqa: PLC0415
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
    if given := os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        try:
            prepare_multiprocess_dir(Path(given))  # an earlier run's files would add up
        except ValueError as exc:
            typer.secho(str(exc), err=True, fg=typer.colors.RED)
            raise typer.Exit(2) from None
    elif settings.workers > 1:
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
    for column in ("model", "requests", "errors", "error rate", "cancelled", "p50 ms",
                   "p95 ms", "cache hits"):
        table.add_column(column, justify="left" if column == "model" else "right")

    def number(value: float | None, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    for row in rows:
        table.add_row(row["model"], str(row["requests"]), str(row["errors"]),
                      number(row["error_rate"], ".2%"), str(row["cancelled"]),
                      number(row["p50_ms"], ".2f"),
                      number(row["p95_ms"], ".2f"), number(row["cache_hit_rate"], ".1%"))
    Console().print(table)


if __name__ == "__main__":  # pragma: no cover - ``python -m serving.cli``
    app()
