"""The prediction log writer: a bounded buffer that a background task COPYs to Postgres.

``record`` is all a request does: it appends one tuple and never waits, raises or touches
the network. The writer takes up to ``predlog_batch_size`` records at a time (or whatever is
there every ``predlog_flush_interval_ms``) and writes them with one COPY, in one transaction
with the batch's id (so a batch retried after an ambiguous commit is never written twice).
While Postgres is slow or down the failed batch is retried with back-off and the buffer fills;
once full, each new record drops the oldest, counted in ``aiinfra_predlog_dropped_total``.
Every record is therefore written exactly once or counted as dropped. Shutdown flushes.

A record is counted in a plain integer; ``publish`` moves that count and the buffer's size to
the Prometheus metrics, from the writer's loop (at least once per flush interval) and before
every scrape: two metric updates per request cost more than the rest of its record.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import orjson
import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from serving.metrics import ServingMetrics
from serving.predlog.records import MAX_REQUEST_ID, input_hash, summarize_outputs
from serving.predlog.schema import (
    drop_expired_partitions,
    ensure_partitions,
    migrate,
    month_of,
    months_between,
)
from serving.settings import Settings

if TYPE_CHECKING:
    from serving.inference import InferenceResult
    from serving.protocol import InferRequest

log = logging.getLogger(__name__)

COLUMNS = ("created_at", "request_id", "model", "model_version", "status", "latency_ms",
           "queue_ms", "batch_size", "request_rows", "cached_rows", "input_hash",
           "output_summary")
# Binary COPY: a row costs the event loop about a fifth of its text form (no number or
# timestamp formatting, no bytea escaping) and PostgreSQL less to parse. Each value is sent
# as its column's type, read from the catalogue once the schema is migrated.
COPY_SQL = f"COPY predictions ({', '.join(COLUMNS)}) FROM STDIN (FORMAT BINARY)"
COLUMN_TYPES_SQL = ("SELECT attname, atttypid FROM pg_attribute WHERE attrelid = "
                    "'predictions'::regclass AND attnum > 0 AND NOT attisdropped")
INT4_MAX = 2**31 - 1
CONNECTION_WAIT_S = 2.0
BACKOFF_MIN_S = 0.1
BACKOFF_MAX_S = 5.0
MAINTENANCE_EVERY_S = 3600.0
YIELD_EVERY = 256  # rows formatted between two turns of the event loop
_ONE_MONTH = timedelta(days=31)


# Failures that say nothing about the batch itself: retried for as long as they last.
_TRANSIENT = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout, OSError,
              TimeoutError)
MAX_ATTEMPTS = 3  # for any other failure: a batch Postgres keeps refusing is dropped


@dataclass(slots=True)
class _Batch:
    records: list[tuple]
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    attempts: int = 0


class PredictionLog:
    def __init__(self, settings: Settings, metrics: ServingMetrics) -> None:
        if not settings.database_dsn:
            raise ValueError("the prediction log needs AIINFRA_DATABASE_URL")
        self._dsn = settings.database_dsn
        self._pool_size = settings.predlog_pool_size
        self._capacity = settings.predlog_buffer_size
        self._batch_size = settings.predlog_batch_size
        self._interval_s = settings.predlog_flush_interval_ms / 1000.0
        self._retention_days = settings.predlog_retention_days
        self._shutdown_timeout_s = settings.predlog_shutdown_timeout_s
        self._log_outputs = settings.predlog_outputs
        self._buffer: deque[tuple] = deque()
        self._pending: _Batch | None = None
        self._pending_rows = 0  # len(self._pending.records), kept for the request's side
        self._made = 0  # records made; published to aiinfra_predlog_records_total
        self._published = 0
        self._wake = asyncio.Event()
        self._closing = False
        self._closed = False
        self._ready = False
        self._partitions: set[tuple[int, int]] = set()
        self._types: list[int] = []  # COLUMNS' type oids, for binary COPY
        self._next_maintenance = 0.0
        self._next_write = 0.0  # monotonic time from which a partial batch is written
        self._flushes = 0  # flush() calls waiting: write partial batches at once
        self._pool: AsyncConnectionPool | None = None
        self._task: asyncio.Task | None = None
        self._m_records = metrics.predlog_records
        self._m_written = metrics.predlog_written
        self._m_dropped = metrics.predlog_dropped
        self._m_failures = metrics.predlog_failures
        self._m_buffered = metrics.predlog_buffered
        self._m_write = metrics.predlog_write_seconds

    @property
    def buffered(self) -> int:
        """Records not yet written: in the buffer, or in the batch being written."""
        return len(self._buffer) + self._pending_rows

    def publish(self) -> None:
        """Bring ``aiinfra_predlog_records_total`` and ``_buffered_records`` up to date."""
        made = self._made
        if made != self._published:
            self._m_records.inc(made - self._published)
            self._published = made
        self._m_buffered.set(self.buffered)

    @property
    def ready(self) -> bool:
        """True once the schema is migrated and this month's partitions exist."""
        return self._ready

    async def start(self) -> None:
        """Open the pool and start the writer; Postgres being down here fails nothing."""
        self._pool = AsyncConnectionPool(
            self._dsn, min_size=1, max_size=self._pool_size, open=False, name="predlog",
            timeout=CONNECTION_WAIT_S, check=AsyncConnectionPool.check_connection,
            kwargs={"autocommit": True, "connect_timeout": 5,
                    "application_name": "aiinfra-predlog"})
        await self._pool.open(wait=False)
        self._task = asyncio.create_task(self._run(), name="predlog-writer")

    # -- the request's side --------------------------------------------------------------
    def record(self, *, created_at: float, model: str, status: str, latency_s: float,
               request: InferRequest | None = None, result: InferenceResult | None = None,
               version: int | None = None) -> None:
        """Buffer one request's record. Never raises and never waits."""
        self._made += 1
        try:
            row = self._row(created_at, model, status, latency_s, request, result, version)
        except Exception:  # noqa: BLE001 - a record that cannot be made is a dropped record
            log.exception("prediction log record failed", extra={"model": model})
            self._m_dropped.inc()
            return
        buffer = self._buffer
        if self._closed:
            self._m_dropped.inc()
            return
        if len(buffer) + self._pending_rows >= self._capacity:
            self._m_dropped.inc()
            if not buffer:
                return  # every older record is in the batch being written: drop this one
            buffer.popleft()
        buffer.append(row)
        if len(buffer) == self._batch_size:
            self._wake.set()

    def _row(self, created_at: float, model: str, status: str, latency_s: float,
             request: InferRequest | None, result: InferenceResult | None,
             version: int | None) -> tuple:
        """The COPY row, in ``COLUMNS`` order."""
        request_id = digest = None
        rows = 0
        if request is not None:
            request_id = request.id
            if request_id is not None:
                request_id = request_id[:MAX_REQUEST_ID]
                if "\x00" in request_id:
                    request_id = request_id.replace("\x00", "")  # Postgres text has no NUL
            inputs = request.inputs
            if inputs:
                digest = input_hash(request)
                shape = inputs[0].shape
                # Binary COPY would keep an integer's low 32 bits: a client's shape may be
                # [2**32 + 1, 0], which holds no data.
                rows = min(shape[0], INT4_MAX) if shape else 0
        when = datetime.fromtimestamp(created_at, UTC)
        if result is None:
            return (when, request_id, model, version, status, latency_s * 1000.0, None, None,
                    rows, 0, digest, None)
        batch = result.batch
        summary = Jsonb(summarize_outputs(result.outputs), dumps=orjson.dumps) \
            if self._log_outputs and status == "ok" else None
        return (when, request_id, model, result.version, status, latency_s * 1000.0,
                None if batch.queue_s is None else batch.queue_s * 1000.0, batch.batch_rows,
                result.rows, result.cached_rows, digest, summary)

    # -- the writer ----------------------------------------------------------------------
    async def _run(self) -> None:
        delay = BACKOFF_MIN_S
        failing = False
        while True:
            self.publish()
            try:
                if not self._ready:
                    await self._prepare()
                elif time.monotonic() >= self._next_maintenance:
                    await self._maintain()
                batch = self._pending or (self._take() if self._due() else None)
                if batch is None:
                    if self._closing:
                        return
                    await self._idle()
                    continue
                await self._write(batch)
                self._next_write = time.monotonic() + self._interval_s
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Postgres down or slow: keep buffering
                self._ready = False
                if self._pending is not None:
                    self._m_failures.inc()
                    self._give_up_on_refused(exc)
                if not failing:
                    failing = True
                    log.warning("prediction log: Postgres unavailable (%s: %s); buffering "
                                "records", type(exc).__name__, exc,
                                extra={"buffered": self.buffered})
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            if failing:
                failing = False
                log.warning("prediction log: Postgres answers again; writing",
                            extra={"buffered": self.buffered})
            delay = BACKOFF_MIN_S

    def _due(self) -> bool:
        """Write now: a full batch is waiting, the flush interval has passed since the last
        write, or a flush or shutdown asks for it. Under load this keeps to one COPY per
        interval (or per full batch): each COPY's round trips and transaction cost the event
        loop far more than its rows do."""
        return (len(self._buffer) >= self._batch_size or self._closing or self._flushes > 0
                or time.monotonic() >= self._next_write)

    async def _idle(self) -> None:
        self._wake.clear()
        wait_s = self._next_write - time.monotonic() if self._buffer else self._interval_s
        try:
            async with asyncio.timeout(max(wait_s, 0.001)):
                await self._wake.wait()
        except TimeoutError:
            pass

    def _give_up_on_refused(self, exc: Exception) -> None:
        """Drop the pending batch, counted, once Postgres has refused it (not merely been
        unreachable) ``MAX_ATTEMPTS`` times: one bad batch must not stop the log."""
        batch = self._pending
        assert batch is not None
        if isinstance(exc, _TRANSIENT):
            return
        batch.attempts += 1
        if batch.attempts < MAX_ATTEMPTS:
            return
        log.error("prediction log: batch refused %d times; dropped (%s: %s)", batch.attempts,
                  type(exc).__name__, exc, extra={"dropped": len(batch.records)})
        self._m_dropped.inc(len(batch.records))
        self._set_pending(None)

    def _take(self) -> _Batch | None:
        if not self._buffer:
            return None
        count = min(len(self._buffer), self._batch_size)
        take = self._buffer.popleft
        return self._set_pending(_Batch([take() for _ in range(count)]))

    def _set_pending(self, batch: _Batch | None) -> _Batch | None:
        self._pending = batch
        self._pending_rows = 0 if batch is None else len(batch.records)
        return batch

    async def _prepare(self) -> None:
        assert self._pool is not None
        async with self._pool.connection(timeout=CONNECTION_WAIT_S) as conn:
            await migrate(conn)
            cursor = await conn.execute(COLUMN_TYPES_SQL)
            types = dict(await cursor.fetchall())
        self._types = [types[column] for column in COLUMNS]
        self._partitions.clear()
        await self._maintain()
        self._ready = True

    async def _maintain(self) -> None:
        """Partitions for this month and the next; retention."""
        assert self._pool is not None
        now = datetime.now(UTC)
        async with self._pool.connection(timeout=CONNECTION_WAIT_S) as conn:
            months = months_between(month_of(now), month_of(now + _ONE_MONTH))
            await ensure_partitions(conn, months)
            self._partitions.update(months)
            await drop_expired_partitions(conn, self._retention_days, now)
        self._next_maintenance = time.monotonic() + MAINTENANCE_EVERY_S

    async def _write(self, batch: _Batch) -> None:
        assert self._pool is not None
        started = time.perf_counter()
        records = batch.records
        months = months_between(month_of(min(record[0] for record in records)),
                                month_of(max(record[0] for record in records)))
        async with self._pool.connection(timeout=CONNECTION_WAIT_S) as conn:
            if not self._partitions.issuperset(months):
                await ensure_partitions(conn, months)
                self._partitions.update(months)
            try:
                async with conn.transaction(), conn.cursor() as cursor:
                    await cursor.execute("INSERT INTO predlog_batches (batch_id) VALUES (%s)",
                                         (batch.id,))
                    async with cursor.copy(COPY_SQL) as copy:
                        copy.set_types(self._types)
                        write_row = copy.write_row
                        for start in range(0, len(records), YIELD_EVERY):
                            for record in records[start:start + YIELD_EVERY]:
                                await write_row(record)
                            await asyncio.sleep(0)  # let requests in between rows
            except psycopg.errors.UniqueViolation:
                log.info("prediction log batch was already written",
                         extra={"batch": str(batch.id)})
        self._set_pending(None)
        self._m_written.inc(len(records))
        self._m_write.observe(time.perf_counter() - started)

    async def flush(self, timeout_s: float) -> bool:
        """Wait until every buffered record is written; False if ``timeout_s`` ran out."""
        deadline = time.monotonic() + timeout_s
        self._flushes += 1
        try:
            while self.buffered:
                if time.monotonic() >= deadline:
                    return False
                self._wake.set()
                await asyncio.sleep(0.01)
        finally:
            self._flushes -= 1
        return True

    async def close(self) -> None:
        """Flush what is buffered (within the shutdown timeout), then stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            try:
                async with asyncio.timeout(self._shutdown_timeout_s):
                    await asyncio.shield(self._task)
            except TimeoutError:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
        self._closed = True
        lost = self.buffered
        if lost:
            self._m_dropped.inc(lost)
            log.warning("prediction log: records dropped at shutdown (Postgres unavailable)",
                        extra={"dropped": lost})
        self._buffer.clear()
        self._set_pending(None)
        self.publish()
        if self._pool is not None:
            await self._pool.close()

