"""The prediction log against a real PostgreSQL: migrations, partitions and retention, the
writer's buffer (exactly once or counted as dropped), shutdown flush, the infer path's
records, and ``aiinfra predlog stats``."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import psycopg
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from aiinfra.cli import app as cli_app
from bench.process import free_port
from serving.batcher import BatchStats
from serving.inference import InferenceResult
from serving.metrics import ServingMetrics
from serving.predlog import PredictionLog
from serving.predlog.schema import (
    Migration,
    drop_expired_partitions,
    ensure_partitions,
    load_migrations,
    migrate,
    month_of,
    partitions,
)
from serving.predlog.stats import parse_since
from serving.predlog.writer import _Batch
from serving.protocol import decode_request
from serving.settings import Settings
from tests.serving.test_cache import CACHED_CONFIG, INFER, body, outputs
from tests.support.models import write_model
from tests.support.services import PostgresServer

pytestmark = pytest.mark.slow

MakeClient = Callable[..., TestClient]
WAIT_S = 10.0


def rows_of(url: str, query: str = "SELECT count(*) FROM predictions") -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(query).fetchall()


def value(metrics: ServingMetrics, name: str) -> float:
    return metrics.registry.get_sample_value(name) or 0.0


def make_log(url: str, **overrides) -> tuple[PredictionLog, ServingMetrics]:
    metrics = ServingMetrics()
    settings = Settings(**{"database_url": url, "predlog_flush_interval_ms": 20, **overrides})
    return PredictionLog(settings, metrics), metrics


def record_n(log: PredictionLog, count: int, *, model: str = "m", status: str = "ok") -> None:
    for i in range(count):
        log.record(created_at=time.time(), model=model, status=status, latency_s=0.001 * i)


# -- schema -------------------------------------------------------------------------------
async def test_migrations_are_versioned_idempotent_and_applied_once(database_url: str) -> None:
    shipped = load_migrations()
    assert [m.version for m in shipped] == [1]
    connections = [await psycopg.AsyncConnection.connect(database_url, autocommit=True)
                   for _ in range(3)]
    try:
        applied = await asyncio.gather(*(migrate(conn) for conn in connections))
        assert sorted(applied) == [[], [], [1]], "each migration must apply exactly once"
        assert await migrate(connections[0]) == []
        extra = Migration(2, "extra", "CREATE TABLE extra (id integer)")
        assert await migrate(connections[0], [*shipped, extra]) == [2]
        assert await migrate(connections[1], [*shipped, extra]) == []
    finally:
        for conn in connections:
            await conn.close()
    versions = rows_of(database_url, "SELECT version, name FROM aiinfra_schema_migrations "
                                     "ORDER BY version")
    assert versions == [(1, "predictions"), (2, "extra")]
    (strategy,) = rows_of(database_url, "SELECT partstrat FROM pg_partitioned_table "
                                        "WHERE partrelid = 'predictions'::regclass")
    assert strategy == ("r",)
    (index,) = rows_of(database_url, "SELECT indexdef FROM pg_indexes "
                                     "WHERE indexname = 'predictions_model_created_at'")
    assert index[0].endswith("(model, created_at)")


async def test_monthly_partitions_and_retention(database_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await migrate(conn)
        now = datetime(2026, 5, 15, tzinfo=UTC)
        await ensure_partitions(conn, [(2026, 1), (2026, 2), (2026, 3), (2026, 4), (2026, 5)])
        await ensure_partitions(conn, [(2026, 5)])  # again: a no-op
        await conn.execute("INSERT INTO predictions (created_at, request_id, model, status, "
                           "latency_ms, request_rows) VALUES ('2026-02-10', 'r', 'm', 'ok', "
                           "1, 1), ('2026-05-10', 'r', 'm', 'ok', 1, 1)")
        # 45 days before 15 May is 31 March: January and February have wholly passed.
        dropped = await drop_expired_partitions(conn, 45, now)
        assert dropped == ["predictions_p202601", "predictions_p202602"]
        assert await partitions(conn) == ["predictions_p202603", "predictions_p202604",
                                          "predictions_p202605"]
        assert await drop_expired_partitions(conn, 0, now) == []
    assert rows_of(database_url) == [(1,)]


def test_month_of_is_utc() -> None:
    # 1 am on 1 June at UTC+2 is still May in UTC: partitions follow UTC.
    assert month_of(datetime(2026, 6, 1, 1, 0, tzinfo=timezone(timedelta(hours=2)))) == (2026, 5)
    assert month_of(datetime(2026, 6, 1, 0, 0, tzinfo=UTC)) == (2026, 6)


# -- the writer ---------------------------------------------------------------------------
async def test_records_are_written_with_their_fields(database_url: str) -> None:
    log, metrics = make_log(database_url, predlog_outputs=True)
    await log.start()
    request = decode_request(
        b'{"id": "req-1", "inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 4], '
        b'"data": [1, 2, 3, 4, 5, 6, 7, 8]}]}', None)
    logits = np.array([[0.1, 0.9], [0.8, 0.2]], dtype=np.float32)
    result = InferenceResult(3, [("logits", logits, False)], rows=2, cached_rows=1,
                             batch=BatchStats(queue_s=0.002, batch_rows=6))
    log.record(created_at=time.time(), model="m", status="ok", latency_s=0.0125,
               request=request, result=result)
    log.record(created_at=time.time(), model="m", status="invalid", latency_s=0.001,
               version=3)
    assert await log.flush(WAIT_S)
    await log.close()
    rows = rows_of(database_url, "SELECT request_id, model, model_version, status, latency_ms, "
                                 "queue_ms, batch_size, request_rows, cached_rows, "
                                 "length(input_hash), output_summary FROM predictions "
                                 "ORDER BY status DESC")
    ok, invalid = rows
    assert ok[:10] == ("req-1", "m", 3, "ok", 12.5, 2.0, 6, 2, 1, 16)
    assert ok[10]["logits"]["argmax"] == [1, 0]
    assert ok[10]["logits"]["shape"] == [2, 2]
    assert invalid[:10] == (None, "m", 3, "invalid", 1.0, None, None, 0, 0, None)
    assert value(metrics, "aiinfra_predlog_written_total") == 2
    assert value(metrics, "aiinfra_predlog_buffered_records") == 0


async def test_full_buffer_drops_the_oldest_and_counts_them(postgres: PostgresServer) -> None:
    unreachable = f"postgresql://postgres@127.0.0.1:{free_port()}/none"
    log, metrics = make_log(unreachable, predlog_buffer_size=10,
                            predlog_shutdown_timeout_s=0.2)
    await log.start()
    for i in range(25):
        log.record(created_at=time.time(), model=f"m{i}", status="ok", latency_s=0.001)
    # Counts reach the metrics when published (by the writer's loop, or before a scrape).
    assert value(metrics, "aiinfra_predlog_records_total") == 0
    log.publish()
    assert value(metrics, "aiinfra_predlog_records_total") == 25
    assert value(metrics, "aiinfra_predlog_buffered_records") == 10
    assert value(metrics, "aiinfra_predlog_dropped_total") == 15
    assert log.buffered == 10
    assert [row[2] for row in log._buffer] == [f"m{i}" for i in range(15, 25)]
    await log.close()  # Postgres never answered: what was buffered is dropped, counted
    assert value(metrics, "aiinfra_predlog_dropped_total") == 25
    assert value(metrics, "aiinfra_predlog_buffered_records") == 0
    log.record(created_at=time.time(), model="late", status="ok", latency_s=0.001)
    assert value(metrics, "aiinfra_predlog_dropped_total") == 26


async def test_postgres_stopped_then_back_loses_only_counted_records(
        postgres: PostgresServer, database_url: str) -> None:
    log, metrics = make_log(database_url, predlog_buffer_size=100, predlog_batch_size=50)
    await log.start()
    record_n(log, 120)
    assert await log.flush(WAIT_S)
    postgres.stop()
    for _ in range(30):  # the writer fails meanwhile and retries
        record_n(log, 10)
        await asyncio.sleep(0.01)
    assert value(metrics, "aiinfra_predlog_dropped_total") > 0
    postgres.start()
    assert await log.flush(WAIT_S * 2)
    await log.close()
    records = value(metrics, "aiinfra_predlog_records_total")
    dropped = value(metrics, "aiinfra_predlog_dropped_total")
    assert records == 420
    assert rows_of(database_url) == [(records - dropped,)]
    assert value(metrics, "aiinfra_predlog_written_total") == records - dropped


async def test_a_batch_is_never_written_twice(database_url: str) -> None:
    log, _ = make_log(database_url)
    await log.start()
    deadline = time.monotonic() + WAIT_S
    while not log.ready:  # migrated and partitioned
        assert time.monotonic() < deadline, "never ready"
        await asyncio.sleep(0.01)
    batch = _Batch([(datetime.now(UTC), None, "m", 1, "ok", 1.0, None, None, 1, 0, None, None)] * 3)
    await log._write(batch)
    await log._write(batch)  # as after a commit whose answer the connection lost
    await log.close()
    assert rows_of(database_url) == [(3,)]


async def test_a_batch_postgres_refuses_is_dropped_not_retried_forever(
        database_url: str) -> None:
    log, metrics = make_log(database_url)
    await log.start()
    # PostgreSQL text holds no NUL: the batch is refused whenever it is sent.
    log.record(created_at=time.time(), model="m\x00", status="ok", latency_s=0.001)
    deadline = time.monotonic() + WAIT_S
    while value(metrics, "aiinfra_predlog_dropped_total") < 1:
        assert time.monotonic() < deadline, "the refused batch was never dropped"
        await asyncio.sleep(0.01)
    assert value(metrics, "aiinfra_predlog_write_failures_total") == 3
    request = decode_request(b'{"id": "a\\u0000b", "inputs": [{"name": "x", '
                             b'"datatype": "FP32", "shape": [1], "data": [1]}]}', None)
    log.record(created_at=time.time(), model="m", status="ok", latency_s=0.001,
               request=request)
    empty = decode_request(b'{"inputs": [{"name": "x", "datatype": "FP32", '
                           b'"shape": [4294967297, 0], "data": []}]}', None)
    log.record(created_at=time.time(), model="m", status="invalid", latency_s=0.001,
               request=empty)  # no data, yet more rows than an integer holds
    assert await log.flush(WAIT_S)
    await log.close()
    assert rows_of(database_url, "SELECT request_id, request_rows FROM predictions "
                   "ORDER BY request_rows") == [("ab", 1), (None, 2**31 - 1)]


async def test_under_steady_load_one_copy_per_interval_or_full_batch(database_url: str) -> None:
    # Writing whatever arrived during the previous COPY at once would mean a COPY (and its
    # round trips) every few milliseconds under load: the event loop's time goes to
    # transactions instead of rows. Partial batches wait for the flush interval.
    log, metrics = make_log(database_url, predlog_flush_interval_ms=250, predlog_batch_size=150)
    await log.start()
    deadline = time.monotonic() + WAIT_S
    while not log.ready:
        assert time.monotonic() < deadline, "never ready"
        await asyncio.sleep(0.01)
    started = time.monotonic()
    while time.monotonic() - started < 1.0:  # ~100 records/s in bursts of 2
        record_n(log, 2)
        await asyncio.sleep(0.02)
    elapsed = time.monotonic() - started
    copies = value(metrics, "aiinfra_predlog_write_duration_seconds_count")
    assert 1 <= copies <= elapsed / 0.25 + 2
    record_n(log, 150)  # a full batch does not wait for the interval
    deadline = time.monotonic() + 0.2
    while value(metrics, "aiinfra_predlog_write_duration_seconds_count") == copies:
        assert time.monotonic() < deadline, "a full batch waited"
        await asyncio.sleep(0.005)
    assert await log.flush(WAIT_S)
    await log.close()
    assert rows_of(database_url) == [(value(metrics, "aiinfra_predlog_records_total"),)]


async def test_shutdown_flushes_the_buffer(database_url: str) -> None:
    log, metrics = make_log(database_url, predlog_flush_interval_ms=60_000)
    await log.start()
    record_n(log, 250)
    await log.close()
    assert rows_of(database_url) == [(250,)]
    assert value(metrics, "aiinfra_predlog_dropped_total") == 0


# -- on the infer path --------------------------------------------------------------------
def test_every_request_to_a_known_model_is_logged(tmp_path: Path, make_client: MakeClient,
                                                  database_url: str) -> None:
    root = tmp_path / "cached"
    write_model(root, "scale", CACHED_CONFIG)
    client = make_client(root, database_url=database_url, predlog_flush_interval_ms=20)
    outputs(client.post(INFER, json={**body([[1, 2, 3, 4], [5, 6, 7, 8]]), "id": "a"}))
    outputs(client.post(INFER, json={**body([[1, 2, 3, 4]]), "id": "b"}))
    assert client.post(INFER, json=body([[1, 2, 3]])).status_code == 400
    assert client.post(INFER, content=b"{").status_code == 400
    assert client.post("/v2/models/nope/infer", json=body([[1, 2, 3, 4]])).status_code == 404
    log = client.app.state.runtime.predlog
    deadline = time.monotonic() + WAIT_S
    while log.buffered:
        assert time.monotonic() < deadline, "never written"
        time.sleep(0.01)
    rows = rows_of(database_url, "SELECT request_id, model, model_version, status, "
                                 "request_rows, cached_rows, batch_size, queue_ms IS NULL, "
                                 "input_hash IS NULL FROM predictions ORDER BY created_at")
    assert [r[3] for r in rows] == ["ok", "ok", "invalid", "invalid"]
    assert rows[0][:7] == ("a", "scale", 1, "ok", 2, 0, 2)
    # A full cache hit never reached the batcher: no queue time, no batch.
    assert rows[1] == ("b", "scale", 1, "ok", 1, 1, None, True, False)
    assert rows[3][-1] is True, "an undecodable body has no input hash"


# -- stats --------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    ("90s", timedelta(seconds=90)), ("15m", timedelta(minutes=15)),
    ("1h", timedelta(hours=1)), ("7d", timedelta(days=7)), ("2w", timedelta(weeks=2)),
    ("1h30m", timedelta(minutes=90)), ("0.5h", timedelta(minutes=30)),
])
def test_parse_since(text: str, expected: timedelta) -> None:
    assert parse_since(text) == expected


@pytest.mark.parametrize("text", ["", "1", "h", "1y", "1h-", "-1h"])
def test_parse_since_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="use a number and a unit"):
        parse_since(text)


async def test_predlog_stats_command(database_url: str) -> None:
    log, _ = make_log(database_url)
    await log.start()
    for i in range(1, 101):
        log.record(created_at=time.time(), model="mlp", status="ok", latency_s=i / 1000)
    record_n(log, 25, model="mlp", status="timeout")
    record_n(log, 10, model="resnet18")
    log.record(created_at=time.time() - 7200, model="resnet18", status="ok", latency_s=9.0)
    await log.close()

    runner = CliRunner()
    env = {"AIINFRA_DATABASE_URL": database_url}
    result = runner.invoke(cli_app, ["predlog", "stats", "--format", "json"], env=env)
    assert result.exit_code == 0, result.output
    stats = {row["model"]: row for row in json.loads(result.output)["models"]}
    assert stats["mlp"]["requests"] == 125
    assert stats["mlp"]["errors"] == 25
    assert stats["mlp"]["error_rate"] == pytest.approx(0.2)
    assert stats["mlp"]["p50_ms"] == pytest.approx(50.5)
    assert stats["mlp"]["p95_ms"] == pytest.approx(95.05)
    assert stats["resnet18"]["requests"] == 10, "a record older than the window is left out"

    result = runner.invoke(cli_app, ["predlog", "stats", "--model", "resnet18", "--since", "3h",
                                     "--format", "json"], env=env)
    assert result.exit_code == 0, result.output
    (only,) = json.loads(result.output)["models"]
    assert (only["model"], only["requests"]) == ("resnet18", 11)

    result = runner.invoke(cli_app, ["predlog", "stats"], env=env, terminal_width=120)
    assert result.exit_code == 0, result.output
    assert "mlp" in result.output
    assert "20.00%" in result.output


async def test_predlog_stats_counts_cancelled_requests_apart_from_errors(
        database_url: str) -> None:
    """A client that left is not the server failing: it is counted on its own, and the error
    rate is over the requests that were answered."""
    log, _ = make_log(database_url)
    await log.start()
    for i in range(1, 9):
        log.record(created_at=time.time(), model="mlp", status="ok", latency_s=i / 1000)
    record_n(log, 2, model="mlp", status="error")
    record_n(log, 10, model="mlp", status="cancelled")
    await log.close()
    result = CliRunner().invoke(cli_app, ["predlog", "stats", "--format", "json"],
                                env={"AIINFRA_DATABASE_URL": database_url})
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)["models"]
    assert (row["requests"], row["errors"], row["cancelled"]) == (20, 2, 10)
    assert row["error_rate"] == pytest.approx(0.2)


def test_predlog_stats_refusals(postgres: PostgresServer) -> None:
    runner = CliRunner()
    result = runner.invoke(cli_app, ["predlog", "stats"], env={"AIINFRA_DATABASE_URL": ""})
    assert result.exit_code == 2
    assert "set AIINFRA_DATABASE_URL" in result.output
    result = runner.invoke(cli_app, ["predlog", "stats", "--since", "soon"],
                           env={"AIINFRA_DATABASE_URL": postgres.url()})
    assert result.exit_code == 2
    unreachable = f"postgresql://postgres@127.0.0.1:{free_port()}/none"
    result = runner.invoke(cli_app, ["predlog", "stats", "--database-url", unreachable])
    assert result.exit_code == 1
    assert "prediction log query failed" in result.output
    # A database without the log yet: no rows, not an error.
    result = runner.invoke(cli_app, ["predlog", "stats", "--format", "json"],
                           env={"AIINFRA_DATABASE_URL": postgres.url()})
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["models"] == []
