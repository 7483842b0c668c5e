"""DynamicBatcher against a fake backend that records every batch it is given.

Each request's rows carry its id (``1000 * id + offset``), so a recorded batch tells which
requests it held and whether any was split. Backends may block on a ``threading.Event`` (the
gate) so that a test decides when a batch finishes.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from prometheus_client import CollectorRegistry

from serving.backends.base import Backend
from serving.batcher import DynamicBatcher
from serving.errors import InferenceFailed, ModelNotReady, Overloaded, RequestTimeout
from serving.metrics import ServingMetrics
from serving.repository.config import ModelConfig

WAIT_S = 5.0  # the bound on every wait in this file
FAIL_ID = 666  # a request with this id makes the fake backend raise


class FakeBackend(Backend):
    """y = 2x and the row sums, recording each batch; optionally gated or failing."""

    name = "fake"

    def __init__(self, config: ModelConfig, gate: threading.Event | None = None) -> None:
        super().__init__(config, lambda *args: None, torch.device("cpu"))
        self.gate = gate
        self.batches: list[np.ndarray] = []
        self.entered = threading.Event()
        self._lock = threading.Lock()

    def forward(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        (x,) = inputs
        with self._lock:
            self.batches.append(x.copy())
        self.entered.set()
        if self.gate is not None and not self.gate.wait(WAIT_S):
            raise RuntimeError("test gate never opened")
        if np.any(ids_of(x) == FAIL_ID):
            raise RuntimeError("boom")
        return [x * 2, x.sum(axis=1, keepdims=True)]

    @property
    def sizes(self) -> list[int]:
        return [len(batch) for batch in self.batches]

    def seen_ids(self) -> set[int]:
        return {int(i) for batch in self.batches for i in ids_of(batch)}


def ids_of(x: np.ndarray) -> np.ndarray:
    return (x[:, 0] // 1000).astype(int)


def rows(request_id: int, count: int = 1, width: int = 4) -> np.ndarray:
    values = np.arange(count * width, dtype=np.float32).reshape(count, width)
    return values + np.float32(1000 * request_id)


def check_outputs(x: np.ndarray, outputs: list[np.ndarray]) -> None:
    y, total = outputs
    np.testing.assert_array_equal(y, x * 2)
    np.testing.assert_array_equal(total, x.sum(axis=1, keepdims=True))


def make_config(**overrides) -> ModelConfig:
    values = {
        "name": "fake",
        "max_batch_size": 8,
        "max_queue_delay_ms": 20,
        "max_queue_size": 16,
        "inputs": [{"name": "x", "datatype": "FP32", "dims": [4]}],
        "outputs": [{"name": "y", "datatype": "FP32", "dims": [4]},
                    {"name": "total", "datatype": "FP32", "dims": [1]}],
        "warmup": {"enabled": False},
    }
    values.update(overrides)
    return ModelConfig.model_validate(values)


@dataclass
class Rig:
    batcher: DynamicBatcher
    backends: list[FakeBackend]
    metrics: ServingMetrics
    gate: threading.Event | None

    @property
    def backend(self) -> FakeBackend:
        return self.backends[0]

    def sample(self, name: str, **labels: str) -> float | None:
        return self.metrics.registry.get_sample_value(name, {"model": "fake", **labels})


@pytest.fixture
async def make_rig() -> AsyncIterator[Callable[..., Rig]]:
    rigs: list[Rig] = []

    def make(*, gated: bool = False, instances: int = 1, overload_status: int = 503,
             retry_after_s: int = 1, **overrides) -> Rig:
        config = make_config(instance_count=instances, **overrides)
        gate = threading.Event() if gated else None
        backends = [FakeBackend(config, gate) for _ in range(instances)]
        metrics = ServingMetrics(CollectorRegistry())
        batcher = DynamicBatcher("fake", config, backends, metrics,
                                 overload_status=overload_status, retry_after_s=retry_after_s)
        batcher.start()
        rig = Rig(batcher, backends, metrics, gate)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        if rig.gate is not None:
            rig.gate.set()
        await asyncio.wait_for(rig.batcher.stop(), WAIT_S)


async def wait_until(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.001)


async def submit_all(batcher: DynamicBatcher, inputs: list[np.ndarray],
                     timeout_s: float | None = None) -> list:
    return await asyncio.wait_for(
        asyncio.gather(*(batcher.infer([x], timeout_s) for x in inputs),
                       return_exceptions=True), WAIT_S)


# -- batch formation ---------------------------------------------------------------------
async def test_concurrent_single_rows_arrive_as_one_batch(make_rig) -> None:
    rig = make_rig(max_queue_delay_ms=50)
    inputs = [rows(i) for i in range(6)]

    results = await submit_all(rig.batcher, inputs)

    assert rig.backend.sizes == [6]
    for x, outputs in zip(inputs, results, strict=True):
        check_outputs(x, outputs)
    assert rig.sample("aiinfra_batch_size_count") == 1
    assert rig.sample("aiinfra_batch_size_sum") == 6


async def test_batch_closes_at_max_batch_size_without_waiting(make_rig) -> None:
    rig = make_rig(max_queue_delay_ms=10_000)
    inputs = [rows(i) for i in range(8)]

    started = time.monotonic()
    results = await submit_all(rig.batcher, inputs)

    assert time.monotonic() - started < 1.0, "a full batch waited for the queue delay"
    assert rig.backend.sizes == [8]
    for x, outputs in zip(inputs, results, strict=True):
        check_outputs(x, outputs)


async def test_batch_closes_after_max_queue_delay_with_fewer_requests(make_rig) -> None:
    rig = make_rig(max_queue_delay_ms=150)

    started = time.monotonic()
    first = asyncio.create_task(rig.batcher.infer([rows(0)], None))
    await asyncio.sleep(0.03)
    assert not first.done()
    later = await submit_all(rig.batcher, [rows(1), rows(2)])
    elapsed = time.monotonic() - started
    check_outputs(rows(0), await first)

    assert rig.backend.sizes == [3], "requests arriving within the delay must join the batch"
    assert 0.14 <= elapsed < 1.0, f"batch closed after {elapsed:.3f}s, expected ~0.15s"
    for i, outputs in enumerate(later, start=1):
        check_outputs(rows(i), outputs)


@pytest.mark.parametrize(("counts", "expected"), [
    ((3, 3, 3), [6, 3]),
    ((5, 4, 3), [8, 4]),
    ((8, 1), [8, 1]),
])
async def test_multi_row_requests_are_packed_whole(make_rig, counts, expected) -> None:
    rig = make_rig(max_queue_delay_ms=20)
    inputs = [rows(i, n) for i, n in enumerate(counts)]

    results = await submit_all(rig.batcher, inputs)

    assert rig.backend.sizes == expected
    for batch in rig.backend.batches:
        held = Counter(ids_of(batch).tolist())
        assert all(held[i] == counts[i] for i in held), f"a request was split: {held}"
    for x, outputs in zip(inputs, results, strict=True):
        check_outputs(x, outputs)
    assert rig.sample("aiinfra_inferences_total") == sum(counts)
    assert rig.sample("aiinfra_executions_total") == len(expected)


async def test_requests_with_different_shapes_are_not_mixed(make_rig) -> None:
    rig = make_rig(max_queue_delay_ms=20,
                   inputs=[{"name": "x", "datatype": "FP32", "dims": [-1]}],
                   outputs=[{"name": "y", "datatype": "FP32", "dims": [-1]},
                            {"name": "total", "datatype": "FP32", "dims": [1]}])
    inputs = [rows(0, 1, 4), rows(1, 1, 3), rows(2, 2, 4), rows(3, 1, 3)]

    results = await submit_all(rig.batcher, inputs)

    for x, outputs in zip(inputs, results, strict=True):
        assert not isinstance(outputs, BaseException), outputs
        check_outputs(x, outputs)
    by_width = sorted((batch.shape[1], sorted(set(ids_of(batch).tolist())))
                      for batch in rig.backend.batches)
    assert by_width == [(3, [1, 3]), (4, [0, 2])]


# -- refusals ----------------------------------------------------------------------------
@pytest.mark.parametrize("status", [503, 429])
async def test_full_queue_rejects_the_next_request_at_once(make_rig, status) -> None:
    rig = make_rig(gated=True, max_queue_delay_ms=0, max_queue_size=2,
                   overload_status=status, retry_after_s=7)
    busy = asyncio.create_task(rig.batcher.infer([rows(0)], None))
    await wait_until(rig.backend.entered.is_set, "the first batch runs")
    queued = [asyncio.create_task(rig.batcher.infer([rows(i)], None)) for i in (1, 2)]
    await wait_until(lambda: rig.batcher.queue_depth == 2, "two requests are queued")

    started = time.monotonic()
    with pytest.raises(Overloaded) as refused:
        await rig.batcher.infer([rows(3)], None)
    assert time.monotonic() - started < 0.05
    assert refused.value.status == status
    assert refused.value.headers == {"Retry-After": "7"}
    # The series starts at zero here; the runtime counts the refusal with the request's
    # outcome, by the error's reason (tests/serving/test_metrics.py).
    assert rig.sample("aiinfra_rejections_total", reason="queue_full") == 0

    rig.gate.set()
    for i, task in enumerate([busy, *queued]):
        check_outputs(rows(i), await asyncio.wait_for(task, WAIT_S))
    assert rig.backend.seen_ids() == {0, 1, 2}


async def test_request_timing_out_behind_a_busy_instance_is_never_executed(make_rig) -> None:
    rig = make_rig(gated=True, max_queue_delay_ms=0)
    busy = asyncio.create_task(rig.batcher.infer([rows(0)], None))
    await wait_until(rig.backend.entered.is_set, "the first batch runs")

    started = time.monotonic()
    with pytest.raises(RequestTimeout) as expired:
        await rig.batcher.infer([rows(1)], 0.05)
    assert 0.04 <= time.monotonic() - started < 1.0
    assert expired.value.status == 503

    rig.gate.set()
    check_outputs(rows(0), await asyncio.wait_for(busy, WAIT_S))
    check_outputs(rows(2), await asyncio.wait_for(rig.batcher.infer([rows(2)], None), WAIT_S))
    assert rig.backend.seen_ids() == {0, 2}, "the expired request was executed"
    assert rig.sample("aiinfra_rejections_total", reason="timeout") == 0  # counted upstream
    assert rig.sample("aiinfra_queue_depth") == 0


async def test_request_timing_out_while_its_batch_forms_is_never_executed(make_rig) -> None:
    rig = make_rig(max_queue_delay_ms=200)

    with pytest.raises(RequestTimeout):
        await rig.batcher.infer([rows(1)], 0.05)
    # A request with no deadline joins the same forming batch; it must still be served.
    check_outputs(rows(2), await asyncio.wait_for(rig.batcher.infer([rows(2)], None), WAIT_S))

    assert rig.backend.seen_ids() == {2}, "the expired request was executed"
    assert rig.backend.sizes == [1]


async def test_backend_error_fails_only_its_batch(make_rig) -> None:
    rig = make_rig(max_queue_delay_ms=20)
    bad, good = rows(FAIL_ID, 5), rows(1, 4)  # 5 + 4 > 8: two batches

    failed, served = await submit_all(rig.batcher, [bad, good])

    assert isinstance(failed, InferenceFailed), failed
    assert failed.status == 500
    assert "boom" in failed.message
    check_outputs(good, served)
    assert rig.backend.sizes == [5, 4]
    # ...and the batcher goes on serving.
    later = [rows(i) for i in (2, 3)]
    for x, outputs in zip(later, await submit_all(rig.batcher, later), strict=True):
        check_outputs(x, outputs)


# -- lifecycle and instances -------------------------------------------------------------
async def test_stop_runs_everything_queued_then_refuses_new_work(make_rig) -> None:
    rig = make_rig(gated=True, max_queue_delay_ms=10_000)
    first = asyncio.create_task(rig.batcher.infer([rows(0, 8)], None))
    await wait_until(rig.backend.entered.is_set, "the first batch runs")
    waiting = [asyncio.create_task(rig.batcher.infer([rows(i, 5)], None)) for i in (1, 2)]
    await wait_until(lambda: rig.batcher.queue_depth == 2, "two requests are queued")

    stopping = asyncio.create_task(rig.batcher.stop())
    await asyncio.sleep(0.02)
    assert not stopping.done(), "stop() returned while work was still queued"
    with pytest.raises(ModelNotReady):
        await rig.batcher.infer([rows(3)], None)

    started = time.monotonic()
    rig.gate.set()
    await asyncio.wait_for(stopping, WAIT_S)
    assert time.monotonic() - started < 1.0, "stop() waited for the queue delay"
    assert all(task.done() for task in [first, *waiting])
    for i, task in enumerate([first, *waiting]):
        check_outputs(rows(i, 8 if i == 0 else 5), task.result())
    assert rig.backend.sizes == [8, 5, 5]
    with pytest.raises(ModelNotReady):
        await rig.batcher.infer([rows(4)], None)


async def test_two_instances_run_two_batches_concurrently(make_rig) -> None:
    rig = make_rig(gated=True, instances=2, max_queue_delay_ms=0)
    tasks = [asyncio.create_task(rig.batcher.infer([rows(i, 8)], None)) for i in (0, 1)]

    await wait_until(lambda: all(b.entered.is_set() for b in rig.backends),
                     "both instances run a batch at the same time")
    rig.gate.set()

    for i, task in enumerate(tasks):
        check_outputs(rows(i, 8), await asyncio.wait_for(task, WAIT_S))
    assert [b.sizes for b in rig.backends] == [[8], [8]]
    assert set().union(*(b.seen_ids() for b in rig.backends)) == {0, 1}


class RowDroppingBackend(FakeBackend):
    """Returns one row fewer than it was given: its outputs cannot be split per request."""

    def forward(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        y, total = super().forward(inputs)
        return [y[:-1], total[:-1]]


async def test_outputs_with_the_wrong_row_count_fail_the_batch_and_leak_nothing() -> None:
    config = make_config(max_queue_delay_ms=50)
    metrics = ServingMetrics()
    batcher = DynamicBatcher("fake", config, [RowDroppingBackend(config)], metrics)
    batcher.start()
    try:
        results = await asyncio.wait_for(asyncio.gather(
            *(batcher.infer([rows(i)], None) for i in range(3)), return_exceptions=True), WAIT_S)
    finally:
        await batcher.stop()
    for result in results:  # never someone else's rows, never an empty array with success
        assert isinstance(result, InferenceFailed), result
        assert "model 'fake'" in result.message
        assert "output 'y' has 2 rows for a batch of 3" in result.message


async def test_a_request_whose_batch_has_started_is_answered_past_its_timeout(make_rig) -> None:
    """The timeout bounds queueing (Triton's semantics): once its batch is computing, the
    request is answered, not refused with the GPU time already spent."""
    rig = make_rig(gated=True, max_queue_delay_ms=0)
    task = asyncio.create_task(rig.batcher.infer([rows(1)], 0.05))
    await wait_until(rig.backend.entered.is_set, "the batch runs")
    await asyncio.sleep(0.15)  # well past the timeout, the forward still running
    rig.gate.set()
    check_outputs(rows(1), await asyncio.wait_for(task, WAIT_S))
    assert rig.backend.seen_ids() == {1}


async def test_a_cancelled_request_with_a_timeout_is_never_computed(make_rig) -> None:
    """A client that leaves cancels its request, timeout or not (the timeout used to shield
    the queued entry from its caller's cancellation, so it was computed for nobody)."""
    rig = make_rig(gated=True, max_queue_delay_ms=0)
    busy = asyncio.create_task(rig.batcher.infer([rows(0)], None))
    await wait_until(rig.backend.entered.is_set, "the first batch runs")
    leaving = asyncio.create_task(rig.batcher.infer([rows(1)], 5.0))
    staying = asyncio.create_task(rig.batcher.infer([rows(2)], 5.0))
    await wait_until(lambda: rig.batcher.queue_depth == 2, "both queued")
    leaving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leaving
    rig.gate.set()
    check_outputs(rows(0), await asyncio.wait_for(busy, WAIT_S))
    check_outputs(rows(2), await asyncio.wait_for(staying, WAIT_S))
    assert rig.backend.seen_ids() == {0, 2}
