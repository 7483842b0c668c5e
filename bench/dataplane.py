"""Side by side in one run: what the data plane costs and what it saves.

- **baseline**: ``aiinfra serve`` with neither cache nor prediction log: the compute path;
- **predlog**: the same server logging every request to Postgres (``AIINFRA_DATABASE_URL``),
  compared with the baseline in paired, interleaved windows (``bench.paired``): a
  few-percent cost is smaller than the run-to-run noise of single runs on a small machine;
- **control** (optional): the same comparison with the log off on both sides: the noise floor;
- **cache_hit**: the model with ``cache: {enabled: true}``; the load repeats one body, so
  every request after the first is answered by the in-process tier;
- **cache_hit_redis** (when Redis is there): the same with the in-process tier off, so every
  hit is a round trip to Redis.

Without ``--database-url`` / ``--redis-url`` (or ``AIINFRA_DATABASE_URL`` /
``AIINFRA_REDIS_URL``) throwaway servers are started on loopback. They then share the
machine's cores with aiinfra and the load generator, which makes the measured cost an upper
bound on what a separate database host (RDS, ElastiCache) would cost.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from subprocess import Popen

import psycopg
import yaml

from bench.compare import machine
from bench.loadgen import Probe
from bench.paired import Side, compare_sides
from bench.procstat import tree_cpu_seconds
from bench.stores import PostgresServer, RedisServer
from serving.demo import build_demo_repository
from serving.settings import Settings

RUNS = ("baseline", "predlog", "cache_hit", "cache_hit_redis")


def cached_copy(repository: Path, model: str, into: Path) -> Path:
    """A repository with ``model`` alone, its cache on; artifacts linked, not copied."""
    source = repository / model
    target = into / model
    target.mkdir(parents=True)
    config = yaml.safe_load((source / "config.yaml").read_text()) or {}
    config["cache"] = {"enabled": True, "ttl_s": 3600}
    (target / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    for entry in source.iterdir():
        if entry.is_dir():
            (target / entry.name).symlink_to(entry.resolve(), target_is_directory=True)
    return into


@contextmanager
def data_stores(database_url: str | None, redis_url: str | None, database_nice: int = 0
                ) -> Iterator[tuple[str, str | None, PostgresServer | None]]:
    """The given stores, or throwaway ones (Redis only if ``redis-server`` is installed);
    the throwaway PostgreSQL too, so that its CPU can be measured."""
    postgres = None
    with ExitStack() as stack:
        if database_url is None:
            postgres = PostgresServer(nice=database_nice)
            stack.callback(postgres.close)
            database_url = postgres.create_database("aiinfra_bench")
        if redis_url is None and shutil.which("redis-server"):
            redis = RedisServer()
            stack.callback(redis.close)
            redis_url = redis.url
        yield database_url, redis_url, postgres


def _logged_rows(database_url: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('predictions')").fetchone()[0] is None:
            return 0
        return conn.execute("SELECT count(*) FROM predictions").fetchone()[0]


def _probe(postgres: PostgresServer | None) -> Callable[[Popen], Probe]:
    """CPU seconds so far of a server (and of a throwaway PostgreSQL, autovacuum included)."""

    def for_server(server: Popen) -> Probe:
        def cpu() -> dict[str, float | None]:
            used = {"server": tree_cpu_seconds(server.pid)}
            if postgres is not None and postgres.pid is not None:
                used["postgres"] = tree_cpu_seconds(postgres.pid)
            return used

        return cpu

    return for_server


def run_data_plane(*, model: str, concurrency: int, payload: str, duration_s: float,
                   warmup_s: float, batch: int, database_url: str | None = None,
                   redis_url: str | None = None, database_nice: int = 0, pairs: int = 1,
                   rounds: int = 4, server_cpus: set[int] | None = None,
                   client_cpus: set[int] | None = None, control: bool = False) -> dict:
    """The prediction log's cost as ``pairs`` paired, interleaved comparisons against the
    compute path (``bench.paired``); with ``control``, the same method with the log
    off on both sides, for its noise floor; then each cache side, ``pairs`` runs of its own
    (medians). ``client_cpus`` pins this process (the load generator) and the throwaway
    stores it starts; ``server_cpus`` pins every server."""
    pinned = os.sched_getaffinity(0) if client_cpus else None
    if client_cpus:
        os.sched_setaffinity(0, client_cpus)
    try:
        return _run_data_plane(
            model=model, load={"concurrency": concurrency, "payload": payload, "batch": batch},
            duration_s=duration_s, warmup_s=warmup_s, database_url=database_url,
            redis_url=redis_url, database_nice=database_nice, pairs=pairs, rounds=rounds,
            server_cpus=server_cpus, client_cpus=client_cpus, control=control)
    finally:
        if pinned is not None:
            os.sched_setaffinity(0, pinned)


def _run_data_plane(*, model: str, load: dict, duration_s: float, warmup_s: float,
                    database_url: str | None, redis_url: str | None, database_nice: int,
                    pairs: int, rounds: int, server_cpus: set[int] | None,
                    client_cpus: set[int] | None, control: bool) -> dict:
    settings = Settings()
    repository = settings.model_repository or build_demo_repository(settings.demo_repository)
    database_url = database_url or settings.database_dsn
    redis_url = redis_url or settings.redis_dsn
    result: dict = {"model": model, **load, "machine": machine(), "pairs": pairs, "rounds": rounds,
                    "duration_s": duration_s,
                    "server_cpus": sorted(server_cpus) if server_cpus else None,
                    "client_cpus": sorted(client_cpus) if client_cpus else None,
                    "database": "given" if database_url else f"throwaway, nice {database_nice}"}
    off = {"AIINFRA_DATABASE_URL": "", "AIINFRA_REDIS_URL": ""}
    with tempfile.TemporaryDirectory(prefix="aiinfra-bench-") as tmp, \
            data_stores(database_url, redis_url, database_nice) as (database, redis, postgres):
        paired = {"model": model, "load": load, "pairs": pairs, "rounds": rounds,
                  "duration_s": duration_s, "warmup_s": warmup_s, "server_cpus": server_cpus,
                  "probe": _probe(postgres)}
        baseline = Side("baseline", repository, off)
        if control:
            result["control"] = compare_sides(
                (baseline, Side("baseline_again", repository, off)), **paired)
        before = _logged_rows(database)
        logged = compare_sides(
            (baseline, Side("predlog", repository, {**off, "AIINFRA_DATABASE_URL": database})),
            **paired)
        result["baseline"] = logged.pop("baseline")
        result["predlog"] = logged.pop("predlog")
        # Every request a logging server answered, warm-up and window edges included, must
        # be a row: each server flushes as it stops.
        logged_rows = _logged_rows(database) - before
        sent = sum(run["predlog"]["sent_total"] for run in logged["runs"])
        result["predlog"].update(logged_rows=logged_rows, sent_total=sent,
                                 every_request_logged=logged_rows == sent)
        result["predlog_paired"] = logged
        cached = cached_copy(repository, model, Path(tmp))
        sides = [Side("cache_hit", cached, off)]
        if redis:
            sides.append(Side("cache_hit_redis", cached, {
                **off, "AIINFRA_REDIS_URL": redis, "AIINFRA_CACHE_LOCAL_MAX_BYTES": "0"}))
        # Each cache side against the compute path by the same method as the log (paired,
        # interleaved windows, the same warm-up and count rule): like with like (review #17).
        for side in sides:
            compared = compare_sides((baseline, side), **paired)
            result[side.name] = compared.pop(side.name)
            result[f"{side.name}_baseline"] = compared.pop("baseline")
            result[f"{side.name}_paired"] = compared
    baseline_side = result["baseline"]

    def ratio(run: str, key: str, base: str = "baseline") -> float | None:
        if run not in result or not result[base][key]:
            return None
        return result[run][key] / result[base][key]

    result["ratios"] = {
        "predlog_rps_vs_baseline": result["predlog_paired"]["rps_ratio_median"],
        "predlog_p99_vs_baseline": ratio("predlog", "p99_ms"),
        "cache_hit_rps_vs_baseline": result["cache_hit_paired"]["rps_ratio_median"],
        "cache_hit_p50_vs_baseline": ratio("cache_hit", "p50_ms", "cache_hit_baseline"),
        "cache_hit_redis_rps_vs_baseline": (
            result["cache_hit_redis_paired"]["rps_ratio_median"]
            if "cache_hit_redis_paired" in result else None),
    }
    if control:
        result["ratios"]["control_rps_ratio"] = result["control"]["rps_ratio_median"]
    result["predlog_cpu"] = predlog_cpu(
        baseline_side, result["predlog"],
        result["predlog_paired"].get("server_cpu_us_added_median"))
    return result


def predlog_cpu(baseline: dict, logged: dict, server_added: float | None = None
                ) -> dict[str, float | None]:
    """What logging a request costs in CPU (µs), in the server and in PostgreSQL, and that
    total as a share of the compute path's server CPU: steadier than throughput on a shared
    machine, and the figure that carries over to a server whose database is elsewhere.
    ``server_added`` (the median of paired differences) is preferred to the difference of
    the two sides' figures when given."""
    base = baseline.get("server_cpu_us_per_request")
    server = logged.get("server_cpu_us_per_request")
    postgres = logged.get("postgres_cpu_us_per_request")
    added = server_added
    if added is None and server is not None and base is not None:
        added = server - base
    total = added + postgres if added is not None and postgres is not None else None
    return {"server_us_added": added, "postgres_us": postgres, "total_us_added": total,
            "total_share_of_baseline_cpu": total / base if total is not None and base else None}
