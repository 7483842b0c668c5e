"""``aiinfra bench``: bounded load against a server, and side-by-side comparisons.

Mounted into the one ``aiinfra`` command by ``aiinfra.cli``; needs the ``bench`` extra.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Benchmarks: load generation and side-by-side comparisons.")


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
        "them); --overload: rounds, each server alone; --transports: rounds of every "
        "side")] = 4,
    server_cpus: Annotated[str | None, typer.Option(
        help="--data-plane: pin each server to these CPUs (e.g. 0 or 0-1)",
        show_default=False)] = None,
    client_cpus: Annotated[str | None, typer.Option(
        help="--data-plane: pin the load generator and throwaway stores to these CPUs",
        show_default=False)] = None,
    control: Annotated[bool, typer.Option(
        "--control", help="--data-plane: also compare two log-off servers (noise floor)")
    ] = False,
    overload: Annotated[bool, typer.Option(
        "--overload", help="Far past saturation with a deadline, and at saturation: "
        "throughput, refusal latency, answers within the deadline")] = False,
    transports: Annotated[bool, typer.Option(
        "--transports", help="Side by side on one server: gRPC vs HTTP binary vs HTTP JSON, "
        "all driven by h2load (nghttp2-client); --rounds interleaved rounds")] = False,
    saturation: Annotated[int, typer.Option(
        min=1, help="--overload: requests in flight that just fill the model's batches")] = 16,
    factor: Annotated[int, typer.Option(
        min=1, help="--overload: load as a multiple of --saturation")] = 8,
    deadline_ms: Annotated[float, typer.Option(
        min=1, help="--overload: the model's deadline (default_timeout_ms)")] = 1000.0,
    workers: Annotated[str, typer.Option(
        help="--compare: aiinfra with each of these worker counts, e.g. 1,2")] = "1",
    generator: Annotated[str, typer.Option(
        help="--compare's load generator: wrk, python, or auto (wrk when installed)")] = "auto",
    peers: Annotated[str | None, typer.Option(
        help="--compare (JSON): other servers to measure too, e.g. litserve,kserve (each "
        "installed into .bench/peers on first use)", show_default=False)] = None,
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

        from bench.gpu_suite import options_for, run_suite, to_markdown  # noqa: PLC0415

        try:
            options = options_for(quick=quick, batch_sizes=batch_sizes,
                                  command=shlex.join(["aiinfra", *sys.argv[1:]]))
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        typer.echo(to_markdown(run_suite(options, output or Path("gpu-suite.json"))))
        return
    from bench import report  # noqa: PLC0415
    from bench.compare import run_repeated  # noqa: PLC0415
    from bench.loadgen import run_against  # noqa: PLC0415

    if payload not in ("json", "binary"):
        raise typer.BadParameter("--payload must be json or binary")
    if sum((compare, data_plane, overload, transports)) > 1:
        raise typer.BadParameter("--compare, --data-plane, --overload and --transports are "
                                 "separate runs: pick one")
    if transports:
        from bench import h2load  # noqa: PLC0415
        from bench.transports import run_transports  # noqa: PLC0415

        if not h2load.available():
            raise typer.BadParameter("--transports: h2load is not installed (apt-get install "
                                     "nghttp2-client, or make bench)")
        result = run_transports(model=model, concurrency=concurrency, duration_s=duration,
                                warmup_s=warmup, rounds=rounds, batch=batch)
    elif overload:
        from bench.overload import run_overload  # noqa: PLC0415

        result = run_overload(model=model, payload=payload, saturation=saturation,
                              overload=factor, deadline_ms=deadline_ms, duration_s=duration,
                              warmup_s=warmup, rounds=rounds)
    elif data_plane:
        from bench.dataplane import run_data_plane  # noqa: PLC0415
        from bench.paired import parse_cpus  # noqa: PLC0415

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
        from bench import wrk  # noqa: PLC0415
        from bench.peers import parse_peers  # noqa: PLC0415

        if generator not in ("auto", "wrk", "python"):
            raise typer.BadParameter("--generator must be auto, wrk or python")
        if generator == "auto":
            generator = "wrk" if wrk.available() else "python"
        elif generator == "wrk" and not wrk.available():
            raise typer.BadParameter("--generator wrk: wrk is not installed (apt-get install "
                                     "wrk, or make bench)")
        try:
            chosen = parse_peers(peers)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        result = run_repeated(repeat, model=model, concurrency=concurrency, payload=payload,
                              duration_s=duration, warmup_s=warmup, batch=batch,
                              generator=generator, peers=chosen,
                              workers=_counts(workers))
    else:
        result = run_against(url, model=model, concurrency=concurrency, payload=payload,
                             duration_s=duration, warmup_s=warmup, batch=batch)
    report.emit(result, fmt=fmt, output=output)
    if result.get("errors_total", 0) and not (compare or data_plane or overload or transports):
        raise typer.Exit(1)


def _counts(value: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise typer.BadParameter(f"--workers {value!r}: a list of counts, e.g. 1,2") from None
    if not counts or min(counts) < 1:
        raise typer.BadParameter("--workers: each count at least 1")
    return counts


if __name__ == "__main__":  # pragma: no cover
    app()
