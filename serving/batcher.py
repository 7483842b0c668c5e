"""Dynamic batching over a bounded queue, one worker per model instance.

A batch closes when it holds ``max_batch_size`` rows or when its oldest request has waited
``max_queue_delay_ms``. Requests may carry several rows; they are packed whole (a request is
never split) and only with requests whose non-batch dimensions match. A full queue refuses at
once, and so does one predicted to finish after its deadline (``serving.admission``); a
request whose deadline passed before its batch formed is never executed. The forward pass
runs in the instance's own thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from serving import tracing
from serving.admission import (
    PredictionError,
    ServiceTimes,
    predicted_completion_s,
    retry_after_s,
)
from serving.backends.base import Backend
from serving.errors import (
    DeadlineUnreachable,
    InferenceFailed,
    ModelNotReady,
    Overloaded,
    RequestTimeout,
    ServingError,
)
from serving.metrics import ServingMetrics
from serving.repository.config import ModelConfig
from serving.stats import VersionStats

log = logging.getLogger(__name__)

@dataclass(slots=True)
class BatchStats:
    """What one request's ride through the batcher was: its queue wait and its batch's rows."""

    queue_s: float | None = None
    batch_rows: int | None = None
    # Wall-clock time its batch was taken, and how long the batch computed (for tracing).
    taken_at: float | None = None
    compute_s: float | None = None
    # The request's span context: its batch's span links to it (tracing on only).
    trace: object = None


@dataclass(slots=True, eq=False)  # by identity: held in sets
class _Pending:
    inputs: list[np.ndarray]
    rows: int
    signature: tuple
    deadline: float | None
    enqueued: float
    future: asyncio.Future = field(repr=False)
    stats: BatchStats | None = None
    taken: bool = False  # in a batch that is computing: answered whatever its deadline
    predicted: float | None = None  # seconds to its answer, as admission foresaw it
    # (before the learnt margin)


class DynamicBatcher:
    def __init__(self, label: str, config: ModelConfig, instances: list[Backend],
                 metrics: ServingMetrics, *, overload_status: int = 503,
                 retry_after_s: int = 1, stats: VersionStats | None = None) -> None:
        if not instances:
            raise ValueError("a batcher needs at least one backend instance")
        self.label = label
        self.config = config
        self._instances = instances
        self._max_rows = max(config.max_batch_size, 1)
        self._delay_s = config.max_queue_delay_ms / 1000.0
        self._queue: deque[_Pending] = deque()
        self._queued_deadlines = 0  # queued requests with a deadline (none: no scan)
        self._has_work = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task] = []
        self._computing: set[_Pending] = set()
        self._executors: list[ThreadPoolExecutor] = []
        self._stats = stats if stats is not None else VersionStats()
        self._overload_status = overload_status
        self._retry_after_s = retry_after_s
        self._budget_s = config.latency_budget_ms / 1000.0 or None
        # The deadline no request of this model can exceed: what a refusal before its body
        # is read may judge against (the request's own ``timeout`` can only lower it).
        self._model_deadline_s = (config.default_timeout_ms / 1000.0 or None) or self._budget_s
        self.service_times = ServiceTimes()
        for rows_ in sorted({r for backend in instances for r in backend.warmup_s}):
            # the slowest instance's warm-up: judged from the first request on
            self.service_times.seed(rows_, max(b.warmup_s.get(rows_, 0.0) for b in instances))
        self.prediction_error = PredictionError()
        self._queued_rows = 0
        self._busy: dict[int, float] = {}  # instance -> when its batch should end
        self._m_depth = metrics.queue_depth.labels(label)
        self._m_queue = metrics.queue_seconds.labels(label)
        self._m_compute = metrics.compute_seconds.labels(label)
        self._m_batch = metrics.batch_size.labels(label)
        self._m_exec = metrics.executions.labels(label)
        self._m_infer = metrics.inferences.labels(label)
        self._m_lateness = metrics.admission_lateness.labels(label)
        self._m_margin = metrics.admission_margin.labels(label)
        # The refusals raised here start at zero; the runtime counts them (by each error's
        # ``reason``) with every other outcome.
        for refusal in (Overloaded, RequestTimeout, DeadlineUnreachable):
            metrics.rejections.labels(label, refusal.reason)

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        for index, backend in enumerate(self._instances):
            executor = ThreadPoolExecutor(1, thread_name_prefix=f"{self.label}-{index}")
            self._executors.append(executor)
            self._tasks.append(asyncio.create_task(self._worker(index, backend, executor),
                                                   name=f"batcher-{self.label}-{index}"))

    def abandon(self, error: Exception) -> None:
        """Give up now: every request queued or computing gets ``error``, the workers are
        cancelled (a forward already running in its thread finishes unseen)."""
        self._stopping = True
        for item in [*self._queue, *self._computing]:
            if not item.future.done():
                item.future.set_exception(error)
        self._queue.clear()
        self._queued_deadlines = 0
        self._queued_rows = 0
        self._computing.clear()
        for task in self._tasks:
            task.cancel()
        for executor in self._executors:
            executor.shutdown(wait=False, cancel_futures=True)

    async def stop(self) -> None:
        """Refuse new work, run everything already queued, then stop the workers."""
        self._stopping = True
        self._has_work.set()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for executor in self._executors:
            executor.shutdown(wait=True)
        self._tasks.clear()

    @property
    def stats(self) -> VersionStats:
        return self._stats

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    def problem(self) -> str | None:
        """Why this batcher cannot serve (its workers stopped while it was not stopping)."""
        if self._stopping or not self._tasks:
            return None
        stopped = sum(task.done() for task in self._tasks)
        if stopped == len(self._tasks):
            return "has no running batch worker"
        if stopped:
            return f"has {stopped} of {len(self._tasks)} batch workers stopped"
        return None

    # -- admission -----------------------------------------------------------------------
    def predicted_s(self, rows: int = 1) -> float | None:
        """Seconds until a request of ``rows`` queued now would be answered, the learnt
        margin included (None before the model was measured)."""
        predicted = self._foresee(rows)[0]
        return None if predicted is None else predicted + self.prediction_error.margin

    def _foresee(self, rows: int) -> tuple[float | None, float | None]:
        """(``predicted_s`` without the margin, the earliest deadline of the requests
        already queued in the batch it would join, or None). The first is what the margin
        is learnt against (learnt against predictions that include it, it would chase
        itself and settle at half the lateness)."""
        now = time.monotonic()
        busy_remaining = 0.0
        if len(self._busy) >= len(self._instances):
            busy_remaining = max(min(self._busy.values()) - now, 0.0)
        delay = self._delay_s if self.config.batching else 0.0
        partial, batch_deadline, opened = self._last_batch(now)
        joins = bool(partial) and partial + rows <= self._max_rows
        if joins and self._queued_rows < self._max_rows and opened is not None:
            delay = max(opened + delay - now, 0.0)  # the batch it joins closes then
        predicted = predicted_completion_s(
            self.service_times, queued_rows=self._queued_rows, rows=rows,
            max_rows=self._max_rows, instances=len(self._instances),
            busy_remaining_s=busy_remaining, delay_s=delay)
        return predicted, batch_deadline if joins else None

    def _last_batch(self, now: float) -> tuple[int, float | None, float | None]:
        """The queue's last, partial batch: (its rows, the earliest deadline in it that
        has not passed, when its first request was queued); (0, None, None) when every
        queued batch is full."""
        partial = self._queued_rows % self._max_rows
        if not partial:
            return 0, None, None
        if not self._queued_deadlines:  # no deadline to find: only when the batch opened
            return partial, None, (self._queue[0].enqueued
                                   if self._queued_rows < self._max_rows else None)
        held, earliest, opened = 0, None, None
        for item in reversed(self._queue):
            held += item.rows
            opened = item.enqueued
            deadline = item.deadline
            if (deadline is not None and deadline > now and not item.future.done()
                    and (earliest is None or deadline < earliest)):
                earliest = deadline
            if held >= partial:
                break
        return partial, earliest, opened

    def refusal(self, rows: int, deadline_s: float | None, *, arrived: float | None = None
                ) -> ServingError | None:
        """Why a request of ``rows`` with ``deadline_s`` would be refused now, if it would:
        a full queue, or a predicted completion after its deadline (counted from
        ``arrived``, the request's arrival on the monotonic clock, when given)."""
        if deadline_s is not None and arrived is not None:
            deadline_s -= max(time.monotonic() - arrived, 0.0)
        return self._judge(rows, deadline_s)[0]

    def _judge(self, rows: int, deadline_s: float | None
               ) -> tuple[ServingError | None, float | None]:
        """(the refusal or None, the prediction without the margin, or None); ``deadline_s``
        is what is left of the request's deadline now."""
        if len(self._queue) >= self.config.max_queue_size:
            predicted = self.predicted_s(rows)
            retry = (self._retry_after_s if predicted is None
                     else max(self._retry_after_s, math.ceil(predicted)))
            return Overloaded(
                f"model '{self.label}' queue is full ({self.config.max_queue_size} requests); "
                "retry later", status=self._overload_status, retry_after_s=retry), None
        # Predicted whatever happens next, so that every batch teaches the margin: were
        # only the requests that queue behind others learnt from, a margin grown past the
        # deadline would refuse all of them and never come down again.
        foreseen, batch_deadline = self._foresee(rows)
        if foreseen is None:
            return None, None  # never measured: admitted, and measured
        if not (self._queue or self._busy):
            return None, foreseen  # idle: admitted, and measured
        # Its batch answers everyone in it at once: it may join only if that is in time for
        # them too (admitted, they were promised their deadline; a batch that grew behind
        # its first requests made them late, and taught a margin that halved batches).
        others_s = None if batch_deadline is None else batch_deadline - time.monotonic()
        if deadline_s is None and others_s is None:
            return None, foreseen
        allowed = min(s for s in (deadline_s, others_s) if s is not None)
        predicted = foreseen + self.prediction_error.margin
        if predicted <= allowed:
            return None, foreseen
        if deadline_s is not None and deadline_s <= allowed:
            why = f"after the request's deadline of {deadline_s * 1000:.0f} ms"
        else:
            why = (f"after the deadline of a request already in the batch it would join "
                   f"({allowed * 1000:.0f} ms from now)")
        return DeadlineUnreachable(
            f"model '{self.label}' would answer in about {predicted * 1000:.0f} ms, {why}; "
            "retry later", status=self._overload_status,
            retry_after_s=retry_after_s(predicted, allowed)), foreseen

    def early_refusal(self) -> ServingError | None:
        """The refusal a request would get whatever its body: judged before it is read
        (one row, the model's own deadline)."""
        if self._stopping:
            return None  # the normal path says why
        return self.refusal(1, self._model_deadline_s)

    # -- submission ----------------------------------------------------------------------
    async def infer(self, inputs: list[np.ndarray], timeout_s: float | None,
                    stats: BatchStats | None = None, *, arrived: float | None = None
                    ) -> list[np.ndarray]:
        """Queue one request (its arrays in config input order) and wait for its outputs.

        ``stats``, when given, is filled in with the request's queue wait and batch size.
        ``arrived`` is when the request reached the server (monotonic clock; default now):
        its timeout and latency budget count from then, so the time spent reading and
        decoding it is not given again to the queue.
        """
        if self._stopping:
            raise ModelNotReady(f"model '{self.label}' is unloading; retry shortly")
        batching = self.config.batching
        rows = inputs[0].shape[0] if batching else 1
        now = time.monotonic()
        spent = 0.0 if arrived is None else max(now - arrived, 0.0)
        if timeout_s and spent >= timeout_s:
            raise RequestTimeout(
                f"request timeout of {timeout_s * 1000:.0f} ms expired before the request "
                f"reached model '{self.label}' ({spent * 1000:.0f} ms reading it)")
        deadline_s = timeout_s or self._budget_s
        refused, predicted = self._judge(rows, None if deadline_s is None
                                         else deadline_s - spent)
        if refused is not None:
            raise refused
        loop = asyncio.get_running_loop()
        item = _Pending(
            inputs=inputs,
            rows=rows,
            signature=tuple(a.shape[1:] for a in inputs) if batching else (),
            deadline=now - spent + timeout_s if timeout_s else None,
            enqueued=now,
            future=loop.create_future(),
            stats=stats,
            predicted=predicted,
        )
        self._queue.append(item)
        if item.deadline is not None:
            self._queued_deadlines += 1
        self._queued_rows += rows
        self._m_depth.inc()
        self._has_work.set()
        if item.deadline is None:
            return await item.future
        # One timer, no extra task or future: cancelling the caller cancels ``item.future``,
        # and a cancelled or expired entry is never computed.
        timer = loop.call_later(item.deadline - now, self._expire, item, timeout_s)
        try:
            return await item.future
        finally:
            timer.cancel()

    def _expire(self, item: _Pending, timeout_s: float) -> None:
        if item.taken or item.future.done():
            return  # its batch started before the deadline: it runs and is answered
        item.future.set_exception(RequestTimeout(
            f"request timeout expired after {timeout_s * 1000:.0f} ms "
            f"waiting for model '{self.label}'"))

    # -- batch formation -----------------------------------------------------------------
    def _pop_live(self, now: float) -> _Pending | None:
        while self._queue:
            item = self._queue.popleft()
            self._queued_rows -= item.rows
            self._m_depth.dec()
            if item.deadline is not None:
                self._queued_deadlines -= 1
            if item.future.done():  # timed out and abandoned by its caller
                continue
            if item.deadline is not None and now >= item.deadline:
                continue  # its caller is about to time out: never execute it
            return item
        return None

    def _take_compatible(self, batch: list[_Pending], rows: int, now: float) -> int:
        """Move queued requests that fit (rows and shapes) into ``batch``, oldest first."""
        signature = batch[0].signature
        kept: deque[_Pending] = deque()
        while self._queue and rows < self._max_rows:
            item = self._queue.popleft()
            gone = item.future.done() or (item.deadline is not None and now >= item.deadline)
            if not gone and (item.signature != signature
                             or rows + item.rows > self._max_rows):
                kept.append(item)
                continue
            self._queued_rows -= item.rows
            self._m_depth.dec()
            if item.deadline is not None:
                self._queued_deadlines -= 1
            if gone:
                continue
            batch.append(item)
            rows += item.rows
        if kept:
            kept.extend(self._queue)
            self._queue = kept
        return rows

    async def _next_batch(self) -> list[_Pending] | None:
        while True:
            while not self._queue:
                if self._stopping:
                    return None
                self._has_work.clear()
                await self._has_work.wait()
            first = self._pop_live(time.monotonic())
            if first is not None:
                break
        batch = [first]
        if not self.config.batching:
            return batch
        rows = first.rows
        close_at = first.enqueued + self._delay_s
        while True:
            now = time.monotonic()
            rows = self._take_compatible(batch, rows, now)
            remaining = close_at - now
            if rows >= self._max_rows or remaining <= 0 or self._stopping:
                return batch
            self._has_work.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._has_work.wait()
            except TimeoutError:
                pass

    # -- execution -----------------------------------------------------------------------
    async def _worker(self, index: int, backend: Backend, executor: ThreadPoolExecutor
                      ) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch()
            if batch is None:
                return
            started = time.monotonic()
            # Callers that timed out while their batch was forming are dropped, never run.
            batch = [item for item in batch if not item.future.done()
                     and (item.deadline is None or started < item.deadline)]
            if not batch:
                continue
            batch_rows = sum(item.rows for item in batch)
            taken_at = time.time()
            for item in batch:
                item.taken = True
                self._m_queue.observe(started - item.enqueued)
                if item.stats is not None:
                    item.stats.queue_s = started - item.enqueued
                    item.stats.batch_rows = batch_rows
                    item.stats.taken_at = taken_at
            self._computing.update(batch)
            self._busy[index] = started + (self.service_times.estimate(batch_rows) or 0.0)
            try:
                results = await loop.run_in_executor(executor, self._run, backend, batch)
                compute_s = time.monotonic() - started
                self.service_times.observe(batch_rows, compute_s)
                self._stats.executed(batch_rows, len(batch),
                                     [started - item.enqueued for item in batch], compute_s)
                for item in batch:
                    if item.stats is not None:
                        item.stats.compute_s = compute_s
                if tracing.enabled():
                    tracing.batch_span(self.label, [i.stats.trace if i.stats else None
                                                    for i in batch], batch_rows, taken_at,
                                       taken_at + compute_s)
            except Exception as exc:  # noqa: BLE001 - the batch fails, the server goes on
                log.exception("batch failed", extra={"model": self.label, "rows": len(batch)})
                error = InferenceFailed(f"model '{self.label}' failed: {exc}")
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(error)
                continue
            finally:
                self._computing.difference_update(batch)
                self._busy.pop(index, None)
            answered = time.monotonic()
            for item, outputs in zip(batch, results, strict=True):
                if not item.future.done():
                    item.future.set_result(outputs)
            late = self.prediction_error.observe_batch(  # how right admission was
                [(answered - item.enqueued, item.predicted) for item in batch
                 if item.predicted is not None])  # in the order they were admitted
            if late is not None:
                self._m_lateness.observe(late)
                self._m_margin.set(self.prediction_error.margin)
            if self._queue:  # others may have been woken and gone back to sleep meanwhile
                self._has_work.set()

    def _run(self, backend: Backend, batch: list[_Pending]) -> list[list[np.ndarray]]:
        if len(batch) == 1:
            arrays = [a if a.flags.writeable else a.copy() for a in batch[0].inputs]
        else:
            columns = zip(*(item.inputs for item in batch), strict=True)
            arrays = [np.concatenate(column) for column in columns]
        started = time.perf_counter()
        outputs = backend.forward(arrays)
        self._m_compute.observe(time.perf_counter() - started)
        rows = sum(item.rows for item in batch)
        if self.config.batching:  # split on axis 0: a wrong count would hand out others' rows
            for spec, output in zip(self.config.outputs, outputs, strict=True):
                if output.shape[:1] != (rows,):
                    raise RuntimeError(f"output '{spec.name}' has "
                                       f"{output.shape[0] if output.ndim else 'no'} rows for a "
                                       f"batch of {rows}")
        self._m_exec.inc()
        self._m_infer.inc(rows)
        self._m_batch.observe(rows)
        if len(batch) == 1:
            return [outputs]
        split, start = [], 0
        for item in batch:
            stop = start + item.rows
            split.append([o[start:stop] for o in outputs])
            start = stop
        return split
