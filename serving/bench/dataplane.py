"""Side by side in one run: what the data plane costs and what it saves.

- **baseline**: ``aiinfra serve`` with neither cache nor prediction log: the compute path;
- **predlog**: the same server logging every request to Postgres (``AIINFRA_DATABASE_URL``);
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

import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psycopg
import yaml

from serving.bench.compare import machine, serve_process
from serving.bench.loadgen import run_against
from serving.bench.procstat import tree_cpu_seconds
from serving.bench.stores import PostgresServer, RedisServer, free_port
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


def _serve_and_drive(repository: Path, model: str, env: dict[str, str], load: dict,
                     postgres: PostgresServer | None) -> dict:
    """One server under the closed loop; with the server's (and a throwaway PostgreSQL's)
    CPU per request, measured over the same window."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "serving.cli", "serve", "--repository", str(repository),
               "--port", str(port), "--load", model]
    with serve_process(command, url, "/v2/health/ready",
                       {"AIINFRA_LOG_LEVEL": "warning", **env}) as server:

        def cpu() -> dict[str, float | None]:
            used = {"server": tree_cpu_seconds(server.pid)}
            if postgres is not None and postgres.pid is not None:
                used["postgres"] = tree_cpu_seconds(postgres.pid)
            return used

        return run_against(url, cpu_probe=cpu, **load)


def run_data_plane(*, model: str, concurrency: int, payload: str, duration_s: float,
                   warmup_s: float, batch: int, database_url: str | None = None,
                   redis_url: str | None = None, database_nice: int = 0) -> dict:
    settings = Settings()
    repository = settings.model_repository or build_demo_repository(settings.demo_repository)
    database_url = database_url or settings.database_dsn
    redis_url = redis_url or settings.redis_dsn
    load = {"model": model, "concurrency": concurrency, "payload": payload,
            "duration_s": duration_s, "warmup_s": warmup_s, "batch": batch}
    result: dict = {"model": model, "concurrency": concurrency, "payload": payload,
                    "batch": batch, "machine": machine(),
                    "database": "given" if database_url else f"throwaway, nice {database_nice}"}
    off = {"AIINFRA_DATABASE_URL": "", "AIINFRA_REDIS_URL": ""}
    with tempfile.TemporaryDirectory(prefix="aiinfra-bench-") as tmp, \
            data_stores(database_url, redis_url, database_nice) as (database, redis, postgres):
        cached = cached_copy(repository, model, Path(tmp))
        result["baseline"] = _serve_and_drive(repository, model, off, load, postgres)
        before = _logged_rows(database)
        result["predlog"] = _serve_and_drive(
            repository, model, {**off, "AIINFRA_DATABASE_URL": database}, load, postgres)
        # Warm-up and measured requests alike are logged; the server flushes as it stops.
        result["predlog"]["logged_rows"] = _logged_rows(database) - before
        result["cache_hit"] = _serve_and_drive(cached, model, off, load, None)
        if redis:
            result["cache_hit_redis"] = _serve_and_drive(
                cached, model, {**off, "AIINFRA_REDIS_URL": redis,
                                "AIINFRA_CACHE_LOCAL_MAX_BYTES": "0"}, load, None)
    baseline = result["baseline"]

    def ratio(run: str, key: str) -> float | None:
        return result[run][key] / baseline[key] if run in result and baseline[key] else None

    result["ratios"] = {
        "predlog_rps_vs_baseline": ratio("predlog", "rps"),
        "predlog_p99_vs_baseline": ratio("predlog", "p99_ms"),
        "cache_hit_rps_vs_baseline": ratio("cache_hit", "rps"),
        "cache_hit_p50_vs_baseline": ratio("cache_hit", "p50_ms"),
        "cache_hit_redis_rps_vs_baseline": ratio("cache_hit_redis", "rps"),
    }
    result["predlog_cpu"] = predlog_cpu(baseline, result["predlog"])
    return result


def predlog_cpu(baseline: dict, logged: dict) -> dict[str, float | None]:
    """What logging a request costs in CPU (µs), in the server and in PostgreSQL, and that
    total as a share of the compute path's server CPU: steadier than throughput on a shared
    machine, and the figure that carries over to a server whose database is elsewhere."""
    base = baseline.get("server_cpu_us_per_request")
    server = logged.get("server_cpu_us_per_request")
    postgres = logged.get("postgres_cpu_us_per_request")
    added = server - base if server is not None and base is not None else None
    total = added + postgres if added is not None and postgres is not None else None
    return {"server_us_added": added, "postgres_us": postgres, "total_us_added": total,
            "total_share_of_baseline_cpu": total / base if total is not None and base else None}
