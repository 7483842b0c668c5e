"""Deadline-aware admission: a request predicted to finish after its deadline is refused at
once and never computed; one that fits is admitted; refusals leave before the body is read."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
import pytest

from serving.admission import (
    PredictionError,
    ServiceTimes,
    predicted_completion_s,
    retry_after_s,
)
from serving.batcher import DynamicBatcher
from serving.errors import DeadlineUnreachable, Overloaded, RequestTimeout
from tests.serving import test_batcher
from tests.serving.test_batcher import WAIT_S, check_outputs, rows, wait_until
from tests.serving.test_metrics import gate_instance, infer_body
from tests.support.models import SCALE_CONFIG, write_model

make_rig = test_batcher.make_rig  # the batcher tests' fixture

HTTP = {"protocol": "http"}  # the transport label of requests sent over HTTP


# -- the service-time model --------------------------------------------------------------
def test_service_times_average_each_batch_size_and_fill_in_the_rest() -> None:
    times = ServiceTimes(weight=0.5)
    assert times.estimate(4) is None  # nothing measured: no prediction, nothing refused
    times.observe(2, 0.010)
    times.observe(2, 0.020)  # an EWMA, not the last value
    assert times.estimate(2) == pytest.approx(0.015)
    assert times.estimate(1) == pytest.approx(0.015)  # below every size: the smallest's
    assert times.estimate(8) == pytest.approx(0.060)  # above: scaled with the rows
    times.observe(8, 0.035)
    assert times.estimate(5) == pytest.approx(0.025)  # between: interpolated
    assert times.snapshot() == {2: pytest.approx(0.015), 8: pytest.approx(0.035)}


def test_predicted_completion_counts_rounds_of_full_batches_behind_a_busy_instance() -> None:
    times = ServiceTimes(weight=0.0)  # the first measure of each size stays; batches of 1
    times.observe(1, 0.02)
    times.observe(8, 0.1)
    predict = lambda **kw: predicted_completion_s(  # noqa: E731
        times, **{"max_rows": 8, "instances": 1, "busy_remaining_s": 0.0, "delay_s": 0.005,
                  **kw})
    # alone: its own batch, which waits for the batching delay as it will not fill
    assert predict(queued_rows=0, rows=1) == pytest.approx(0.025)
    # 23 rows ahead: three full batches (the third holds it), one instance free now
    assert predict(queued_rows=23, rows=1) == pytest.approx(0.3)
    assert predict(queued_rows=23, rows=1, busy_remaining_s=0.04) == pytest.approx(0.34)
    # two instances run two batches at once: two rounds
    assert predict(queued_rows=23, rows=1, instances=2) == pytest.approx(0.2)
    assert retry_after_s(0.34, 1.0) == 1
    assert retry_after_s(4.2, 1.0) == 4


# -- the batcher -------------------------------------------------------------------------
async def busy_with_queue(rig, queued: int) -> list[asyncio.Task]:
    """One batch computing (gated) and ``queued`` single-row requests behind it."""
    tasks = [asyncio.create_task(rig.batcher.infer([rows(0)], None))]
    await wait_until(rig.backend.entered.is_set, "the first batch runs")
    tasks += [asyncio.create_task(rig.batcher.infer([rows(i)], None))
              for i in range(1, queued + 1)]
    await wait_until(lambda: rig.batcher.queue_depth == queued, f"{queued} queued")
    return tasks


async def finish(rig, tasks: list[asyncio.Task]) -> None:
    rig.gate.set()
    for i, task in enumerate(tasks):
        check_outputs(rows(i), await asyncio.wait_for(task, WAIT_S))


async def test_a_request_predicted_to_miss_its_deadline_is_refused_at_once(make_rig) -> None:
    rig = make_rig(gated=True, max_batch_size=2, max_queue_delay_ms=0, overload_status=429)
    rig.batcher.service_times.observe(2, 0.2)  # 200 ms a batch of two
    rig.batcher.service_times.observe(1, 0.2)
    tasks = await busy_with_queue(rig, 6)  # three batches ahead: ~0.6 s + the running one

    started = time.monotonic()
    with pytest.raises(DeadlineUnreachable) as refused:
        await rig.batcher.infer([rows(99)], 0.3)
    assert time.monotonic() - started < 0.05  # refused now, not when the deadline passes
    assert refused.value.status == 429
    assert refused.value.reason == "deadline"
    assert isinstance(refused.value, Overloaded)  # clients that know the one retry the other
    predicted = rig.batcher.predicted_s(1)
    assert 0.6 < predicted <= 1.0
    assert refused.value.headers == {"Retry-After": str(retry_after_s(predicted, 0.3))}
    assert "after the request's deadline of 300 ms" in refused.value.message
    assert rig.sample("aiinfra_rejections_total", reason="deadline") == 0  # the runtime counts

    # The same request with a deadline it can meet is admitted and answered.
    fits = asyncio.create_task(rig.batcher.infer([rows(7)], 5.0))
    await wait_until(lambda: rig.batcher.queue_depth == 7, "it queued")
    await finish(rig, tasks)
    check_outputs(rows(7), await asyncio.wait_for(fits, WAIT_S))
    assert 99 not in rig.backend.seen_ids()  # the refused one was never computed


async def test_retry_after_grows_with_the_predicted_wait(make_rig) -> None:
    rig = make_rig(gated=True, max_batch_size=1, max_queue_delay_ms=0, max_queue_size=64)
    rig.batcher.service_times.observe(1, 0.5)
    tasks = await busy_with_queue(rig, 4)
    with pytest.raises(DeadlineUnreachable) as short_queue:
        await rig.batcher.infer([rows(90)], 0.1)
    tasks += [asyncio.create_task(rig.batcher.infer([rows(i)], None)) for i in range(5, 13)]
    await wait_until(lambda: rig.batcher.queue_depth == 12, "12 queued")
    with pytest.raises(DeadlineUnreachable) as long_queue:
        await rig.batcher.infer([rows(91)], 0.1)
    short = int(short_queue.value.headers["Retry-After"])
    long = int(long_queue.value.headers["Retry-After"])
    assert short == 3  # ceil(2.5 - 0.1)
    assert long == 7  # ceil(6.5 - 0.1)
    await finish(rig, tasks)


async def test_the_latency_budget_applies_when_a_request_has_no_timeout(make_rig) -> None:
    rig = make_rig(gated=True, max_batch_size=1, max_queue_delay_ms=0, latency_budget_ms=100)
    tasks = await busy_with_queue(rig, 1)  # unmeasured yet: admitted
    rig.batcher.service_times.observe(1, 0.2)
    with pytest.raises(DeadlineUnreachable, match="deadline of 100 ms"):
        await rig.batcher.infer([rows(99)], None)
    # the request's own timeout takes precedence over the budget
    admitted = asyncio.create_task(rig.batcher.infer([rows(2)], 2.0))
    await wait_until(lambda: rig.batcher.queue_depth == 2, "admitted")
    tasks.append(admitted)
    await finish(rig, tasks)


async def test_an_idle_model_admits_whatever_it_was_measured_at(make_rig) -> None:
    """A stale, slow measurement must not lock a model out: idle, it admits and re-measures."""
    rig = make_rig(max_batch_size=1, max_queue_delay_ms=0)
    rig.batcher.service_times.observe(1, 60.0)
    check_outputs(rows(1), await asyncio.wait_for(rig.batcher.infer([rows(1)], 0.5), WAIT_S))
    assert rig.batcher.service_times.estimate(1) < 60.0


async def test_an_unmeasured_model_admits(make_rig) -> None:
    rig = make_rig(gated=True, max_batch_size=1, max_queue_delay_ms=0)
    tasks = await busy_with_queue(rig, 2)
    assert rig.batcher.predicted_s(1) is None
    tasks.append(asyncio.create_task(rig.batcher.infer([rows(3)], 0.001 + WAIT_S)))
    await wait_until(lambda: rig.batcher.queue_depth == 3, "admitted")
    await finish(rig, tasks)


async def test_the_full_queue_refusal_says_when_the_queue_will_have_drained(make_rig) -> None:
    rig = make_rig(gated=True, max_batch_size=1, max_queue_delay_ms=0, max_queue_size=3,
                   retry_after_s=1)
    rig.batcher.service_times.observe(1, 1.5)
    tasks = await busy_with_queue(rig, 3)
    with pytest.raises(Overloaded) as refused:
        await rig.batcher.infer([rows(9)], None)
    assert refused.value.reason == "queue_full"
    assert refused.value.headers == {"Retry-After": "8"}  # ceil(1.5 + 4 x 1.5)
    await finish(rig, tasks)


# -- refused before the body is read -----------------------------------------------------
@pytest.fixture
def budget_repository(tmp_path: Path) -> Path:
    root = tmp_path / "repository"
    write_model(root, "scale", {**SCALE_CONFIG, "max_queue_delay_ms": 0,
                                "latency_budget_ms": 50})
    return root


def _scope(length: int) -> dict:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": "/v2/models/scale/infer",
            "raw_path": b"/v2/models/scale/infer", "query_string": b"", "root_path": "",
            "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80),
            "headers": [(b"content-type", b"application/json"),
                        (b"content-length", str(length).encode())]}


def test_a_refusal_is_answered_before_its_body_is_read(make_client, budget_repository,
                                                        monkeypatch) -> None:
    client = make_client(budget_repository)
    runtime = client.app.state.runtime
    batcher, gate, entered = gate_instance(client, monkeypatch)
    for rows_ in (1, 8):  # one forward already outlasts the 50 ms budget
        batcher.service_times.observe(rows_, 0.2)
    reads: list[str] = []
    sent: list[dict] = []

    async def receive() -> dict:  # a large body that has not arrived yet
        reads.append("body")
        await asyncio.sleep(WAIT_S)
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    async def call() -> float:
        started = time.monotonic()
        await client.app(_scope(50_000_000), receive, send)
        return time.monotonic() - started

    with ThreadPoolExecutor(1) as pool:
        try:
            held = pool.submit(client.post, "/v2/models/scale/infer", json=infer_body(1))
            assert entered.wait(WAIT_S), "the first request never reached the backend"
            elapsed = client.portal.call(call)
        finally:
            gate.set()
        assert held.result(WAIT_S).status_code == 200
    assert reads == []  # answered without reading a byte of the body
    assert elapsed < 0.5
    start, body = sent
    assert start["status"] == 503
    headers = {name.lower(): value for name, value in start["headers"]}
    assert headers[b"retry-after"] == b"1"
    assert headers[b"connection"] == b"close"  # the kernel drops the unread body
    assert b"deadline of 50 ms" in orjson.loads(body["body"])["error"].encode()
    registry = runtime.metrics.registry
    assert registry.get_sample_value("aiinfra_rejections_total",
                                     {"model": "scale", "reason": "deadline"}) == 1
    assert registry.get_sample_value("aiinfra_inference_requests_total",
                                     {"model": "scale", "outcome": "failure", **HTTP}) == 1
    # idle again: the next request is admitted, whatever the slow estimate
    assert client.post("/v2/models/scale/infer", json=infer_body(1)).status_code == 200


def test_a_request_is_foreseen_in_its_batch_as_it_stands() -> None:
    """Its own batch is the queue's last, partial one with its rows added, or the next
    when it does not fit; the batching delay runs while the instance is busy, not after."""
    times = ServiceTimes(weight=0.5)
    times.observe(1, 0.01)
    times.observe(8, 0.4)
    times.observe(5, 0.25)
    predict = lambda **kw: predicted_completion_s(  # noqa: E731
        times, **{"max_rows": 8, "instances": 1, "busy_remaining_s": 0.1, "delay_s": 0.0,
                  **kw})
    assert predict(queued_rows=0, rows=1, busy_remaining_s=0.0) == pytest.approx(0.01)
    assert predict(queued_rows=4, rows=1) == pytest.approx(0.1 + 0.25)  # joins four
    assert predict(queued_rows=7, rows=1) == pytest.approx(0.1 + 0.4)  # fills the batch
    assert predict(queued_rows=8, rows=1) == pytest.approx(0.1 + 0.4 + 0.01)  # a full one ahead
    # three rows do not fit beside six: the six run first, then a batch of its three
    assert predict(queued_rows=6, rows=3) == pytest.approx(0.1 + 0.4 + times.estimate(3))
    # its batch closes 0.2 s from now, after the busy instance frees: taken then
    assert predict(queued_rows=2, rows=1, delay_s=0.2) == pytest.approx(0.2 + times.estimate(3))
    assert predict(queued_rows=2, rows=1, delay_s=0.05) == pytest.approx(0.1 + times.estimate(3))


def test_the_prediction_learns_how_late_answers_come() -> None:
    error = PredictionError(window=20, quantile=0.95)
    assert error.margin == 0.0
    error.observe(actual_s=0.30, predicted_s=0.20)  # 100 ms late
    assert error.margin == pytest.approx(0.1)
    for _ in range(19):
        error.observe(actual_s=0.20, predicted_s=0.20)  # on time
    # one late batch in twenty: the 95th percentile is 5 % of the way up to it
    assert error.margin == pytest.approx(0.1 * 0.05)
    for _ in range(20):
        error.observe(actual_s=0.10, predicted_s=0.20)  # early: no margin is taken off
    assert error.margin == 0.0
    assert error.recent == [pytest.approx(-0.1)] * 20  # only the window is kept


def test_early_answers_do_not_widen_the_margin() -> None:
    """The deadline bounds the late side: a mean and spread would have grown the margin
    with every early batch (small batches under bursty load) and refused requests that
    would have been in time."""
    error = PredictionError()
    for i in range(32):
        error.observe(actual_s=0.5 - (0.3 if i % 2 else 0.0), predicted_s=0.5)
    assert error.margin == 0.0  # on time or early: nothing to add


async def test_admission_adds_what_it_learnt_about_its_own_lateness(make_rig) -> None:
    rig = make_rig(gated=True, max_batch_size=1, max_queue_delay_ms=0)
    tasks = await busy_with_queue(rig, 1)
    rig.batcher.service_times.observe(1, 0.1)
    assert rig.batcher.refusal(1, 0.5) is None  # ~0.2 s predicted, 0.5 s allowed
    rig.batcher.prediction_error.observe(actual_s=0.6, predicted_s=0.2)  # it was 0.4 s late
    assert isinstance(rig.batcher.refusal(1, 0.5), DeadlineUnreachable)
    await finish(rig, tasks)


async def test_a_batch_is_one_observation_of_lateness(make_rig) -> None:
    """Every request of a batch is answered by the same forward, so their errors are one
    event, not many: counted per request, the last batch alone set the margin (sixteen
    early answers erased the spread that a late batch before them had shown)."""
    rig = make_rig(gated=True, max_batch_size=4, max_queue_delay_ms=0)
    rig.batcher.service_times.observe(1, 0.001)
    rig.batcher.service_times.observe(4, 0.001)
    tasks = [asyncio.create_task(rig.batcher.infer([rows(0)], None))]
    await wait_until(rig.backend.entered.is_set, "the first batch runs")
    tasks += [asyncio.create_task(rig.batcher.infer([rows(i)], WAIT_S)) for i in range(1, 5)]
    await wait_until(lambda: rig.batcher.queue_depth == 4, "four queued")
    await asyncio.sleep(0.1)  # the four were predicted to answer in about 2 ms ...
    await finish(rig, tasks)  # ... and are answered some 100 ms late, in one batch
    assert rig.backend.sizes == [1, 4]
    error = rig.batcher.prediction_error
    assert error.observed == 2, "a batch was observed more than once"
    assert error.margin > 0.05  # the second batch's lateness is learnt
    # ... and shown: one lateness a batch, and the margin now added
    assert rig.sample("aiinfra_admission_lateness_seconds_count") == 2
    assert rig.sample("aiinfra_admission_lateness_seconds_bucket", le="0.0") == 0  # late
    assert rig.sample("aiinfra_admission_margin_seconds") == pytest.approx(error.margin)


def test_early_batches_do_not_erase_what_late_batches_showed() -> None:
    """Batches alternately 200 ms late and 200 ms early, sixteen requests each: the margin
    after an early batch still covers the next late one."""
    error = PredictionError()
    for _ in range(20):
        error.observe_batch([(0.7, 0.5)] * 16)
        error.observe_batch([(0.3, 0.5)] * 16)
    assert error.margin == pytest.approx(0.2)


def test_a_batch_is_judged_by_the_request_admitted_last() -> None:
    """The last request in saw the batch whole; those before it foresaw it smaller than it
    grew, growth admitted only where it kept them in time (judged by its latest answer,
    every batch that filled behind its first request looked late by the growth)."""
    error = PredictionError()
    error.observe_batch([(0.30, 0.10), (0.30, 0.25), (0.29, 0.27)])
    assert error.recent == [pytest.approx(0.02)]
    error.observe_batch([])  # nothing predicted in it: nothing learnt
    assert error.observed == 1


async def test_the_deadline_counts_from_the_requests_arrival(make_rig) -> None:
    """A request that spent part of its deadline being read and decoded has only the rest
    of it left: admission judges against what remains, and the queue timeout too."""
    rig = make_rig(gated=True, max_batch_size=1, max_queue_delay_ms=0)
    tasks = await busy_with_queue(rig, 0)
    rig.batcher.service_times.observe(1, 0.2)
    now = time.monotonic()
    assert rig.batcher.refusal(1, 0.5) is None  # ~0.4 s predicted, 0.5 s allowed
    assert isinstance(rig.batcher.refusal(1, 0.5, arrived=now - 0.3), DeadlineUnreachable)
    with pytest.raises(DeadlineUnreachable):
        await rig.batcher.infer([rows(7)], 0.5, arrived=now - 0.3)
    with pytest.raises(RequestTimeout):  # no time left at all: refused, never queued
        await rig.batcher.infer([rows(8)], 0.5, arrived=now - 0.6)
    assert rig.batcher.queue_depth == 0
    await finish(rig, tasks)
    assert rig.backend.seen_ids() == {0}


def test_time_spent_reading_the_body_counts_against_the_timeout(make_client, tmp_path,
                                                                 monkeypatch) -> None:
    """Over HTTP the deadline starts when the request arrives, not when its body is
    decoded: a body that took longer than the request's timeout to arrive is refused
    without being computed (before, it was given its whole timeout again in the queue)."""
    from serving.routes import infer as route  # noqa: PLC0415

    root = tmp_path / "repository"
    write_model(root, "scale", {**SCALE_CONFIG, "max_queue_delay_ms": 0})
    client = make_client(root)
    runtime = client.app.state.runtime
    real_read = route.read_body

    async def slow_read(*args, **kwargs):
        await asyncio.sleep(0.3)  # a slow upload
        return await real_read(*args, **kwargs)

    monkeypatch.setattr(route, "read_body", slow_read)
    body = {**infer_body(1), "parameters": {"timeout": 200_000}}  # 200 ms, in µs
    response = client.post("/v2/models/scale/infer", json=body)
    assert response.status_code == 503
    assert "expired before the request reached model 'scale'" in response.json()["error"]
    registry = runtime.metrics.registry
    assert registry.get_sample_value("aiinfra_rejections_total",
                                     {"model": "scale", "reason": "timeout"}) == 1
    assert registry.get_sample_value("aiinfra_executions_total", {"model": "scale"}) in (
        None, 0)
    body["parameters"]["timeout"] = 2_000_000  # 2 s: time enough
    assert client.post("/v2/models/scale/infer", json=body).status_code == 200


async def test_a_margin_that_refuses_everything_queued_is_still_learnt_from(make_rig) -> None:
    """A margin grown past the deadline refuses every request that would queue; what is
    admitted then (on an idle model) must still be learnt from, or the margin never comes
    down again and the model serves one request at a time."""
    rig = make_rig(max_batch_size=4, max_queue_delay_ms=0)
    rig.batcher.service_times.observe(1, 0.001)
    error = rig.batcher.prediction_error
    error.observe(actual_s=2.0, predicted_s=0.001)  # one batch far later than foreseen
    assert error.margin > 1.0
    for i in range(40):  # idle each time: admitted, and answered about as foreseen
        check_outputs(rows(i), await rig.batcher.infer([rows(i)], 1.0))
    assert error.observed == 41  # the late batch has left the window
    assert rig.batcher.predicted_s(1) < 0.5  # requests may queue within 1 s again


async def test_the_margin_is_learnt_against_predictions_without_it(make_rig) -> None:
    """Answers that come a steady 50 ms later than the service times foresee: the margin
    grows to cover all of it. (Learnt against predictions that already held the margin,
    it chased itself and settled near half of it.)"""
    rig = make_rig(max_batch_size=1, max_queue_delay_ms=0)
    rig.batcher.service_times = ServiceTimes(weight=0.0)  # never learns: always 1 ms
    rig.batcher.service_times.observe(1, 0.001)
    real_forward = rig.backend.forward

    def slow_forward(inputs):
        time.sleep(0.05)
        return real_forward(inputs)

    rig.backend.forward = slow_forward
    for i in range(25):
        check_outputs(rows(i), await rig.batcher.infer([rows(i)], 1.0))
    assert rig.batcher.prediction_error.observed == 25
    assert rig.batcher.prediction_error.margin >= 0.045


async def test_a_model_seeded_at_warm_up_refuses_its_first_burst_in_time(make_rig) -> None:
    """Warm-up forward times seed the service times: a burst that arrives before any batch
    has run is judged, not admitted blind."""
    rig = make_rig(gated=True, max_batch_size=1, max_queue_delay_ms=0, max_queue_size=64)
    batcher = rig.batcher
    assert batcher.service_times.estimate(1) is None  # the rig's backend was not warmed
    rig.backend.warmup_s[1] = 0.2
    seeded = DynamicBatcher("fake", rig.batcher.config, [rig.backend],
                                         rig.metrics)
    seeded.start()
    try:
        assert seeded.service_times.estimate(1) == pytest.approx(0.2)
        first = asyncio.create_task(seeded.infer([rows(0)], 1.1))
        await wait_until(rig.backend.entered.is_set, "the first batch runs")
        queued = [asyncio.create_task(seeded.infer([rows(i)], 1.1)) for i in range(1, 5)]
        await wait_until(lambda: seeded.queue_depth == 4, "four queued, the last done in ~1 s")
        with pytest.raises(DeadlineUnreachable):  # the sixth would answer in 1.2 s
            await seeded.infer([rows(9)], 1.1)
        rig.gate.set()
        for i, task in enumerate([first, *queued]):
            check_outputs(rows(i), await asyncio.wait_for(task, WAIT_S))
    finally:
        await asyncio.wait_for(seeded.stop(), WAIT_S)


async def test_at_saturation_the_request_no_one_can_join_is_admitted(make_rig) -> None:
    """Sixteen clients, fifteen of them in the computing batch: the sixteenth will ride
    alone, and fits its deadline. Foreseen in a batch as large as the last (15 rows), it
    was refused; a client that resends at once was then refused thousands of times at 1x
    saturation (docs/BENCHMARKS.md)."""
    rig = make_rig(gated=True, max_batch_size=16, max_queue_delay_ms=200, max_queue_size=64)
    batcher = rig.batcher
    batcher.service_times.observe(1, 0.05)
    batcher.service_times.observe(15, 0.6)
    tasks = [asyncio.create_task(batcher.infer([rows(i)], None)) for i in range(15)]
    await wait_until(lambda: rig.backend.sizes == [15], "fifteen computing in one batch")
    # 0.6 s until the batch ends (its batching delay runs out meanwhile), then one row's
    assert batcher.refusal(1, 1.0) is None
    tasks.append(asyncio.create_task(batcher.infer([rows(15)], 1.0)))
    await wait_until(lambda: batcher.queue_depth == 1, "the sixteenth queued")
    await finish(rig, tasks)
    assert rig.backend.sizes == [15, 1]


async def busy_and_due(rig) -> asyncio.Task:
    """One single-row batch computing (gated) past its foreseen end: an instance busy, but
    nothing left of the forward it was foreseen to take."""
    task = asyncio.create_task(rig.batcher.infer([rows(0)], None))
    await wait_until(rig.backend.entered.is_set, "the first request computes")
    await asyncio.sleep(0.07)  # past its 50 ms
    return task


async def submit(batcher, ids, timeout_s) -> list[asyncio.Task]:
    tasks = [asyncio.create_task(batcher.infer([rows(i)], timeout_s)) for i in ids]
    await asyncio.sleep(0)  # each is judged (and queued or refused) on its first step
    return tasks


async def test_a_batch_grows_only_while_it_answers_everyone_in_it_in_time(make_rig) -> None:
    """A request joins the batch ahead of it only if the batch, with its row, still answers
    the requests already in it within their deadlines, whatever its own deadline. (Before,
    a batch grew behind its first request as long as each newcomer fitted its own deadline,
    and under overload the first answered late, batch after batch.)"""
    rig = make_rig(gated=True, max_batch_size=16, max_queue_delay_ms=0, max_queue_size=64)
    batcher = rig.batcher
    batcher.service_times.observe(1, 0.05)
    batcher.service_times.observe(16, 0.6)  # 50 ms + 36.7 ms a row beyond the first
    first = await busy_and_due(rig)
    tight = await submit(batcher, [1], 0.3)  # its batch must answer within 0.3 s
    await wait_until(lambda: batcher.queue_depth == 1, "the tight one queued")
    # with it, 6 more rows fit 0.3 s (7 rows: 0.27 s); an 8th would take 0.307 s
    joiners = await submit(batcher, range(2, 8), None)
    await wait_until(lambda: batcher.queue_depth == 7, "six joined")
    for timeout_s in (None, 5.0):  # no deadline of its own, or a long one: refused alike
        with pytest.raises(DeadlineUnreachable) as refused:
            await batcher.infer([rows(90)], timeout_s)
        assert "after the deadline of a request already in the batch it would join" in (
            refused.value.message)
        assert refused.value.headers == {"Retry-After": "1"}
    await finish(rig, [first, *tight, *joiners])
    assert rig.backend.sizes == [1, 7]
    assert 90 not in rig.backend.seen_ids()
    assert batcher._queued_deadlines == 0  # the count that spares the scan when it is 0


async def test_a_request_gone_from_the_batch_no_longer_bounds_it(make_rig) -> None:
    rig = make_rig(gated=True, max_batch_size=16, max_queue_delay_ms=0, max_queue_size=64)
    batcher = rig.batcher
    batcher.service_times.observe(1, 0.05)
    batcher.service_times.observe(16, 0.6)
    first = await busy_and_due(rig)
    [tight] = await submit(batcher, [1], 0.08)  # one row: 50 ms
    await wait_until(lambda: batcher.queue_depth == 1, "the tight one queued")
    assert isinstance(batcher.refusal(1, None), DeadlineUnreachable)  # two rows: 87 ms
    tight.cancel()  # its client left: its deadline binds no one
    with pytest.raises(asyncio.CancelledError):
        await tight
    assert batcher.refusal(1, None) is None
    await finish(rig, [first])
    assert batcher.queue_depth == 0
    assert batcher._queued_deadlines == 0


async def test_the_first_burst_after_a_start_is_judged_batch_by_batch(make_rig) -> None:
    """Seeded at warm-up, with one request computing and no batch run yet: a burst with a
    0.52 s deadline fills its batch as far as that deadline allows, 13 rows (0.49 s), and
    the rest are refused at once (foreseen in a full batch, 0.6 s, all of them were)."""
    rig = make_rig(gated=True, max_batch_size=16, max_queue_delay_ms=0, max_queue_size=64)
    batcher = rig.batcher
    batcher.service_times.seed(1, 0.05)
    batcher.service_times.seed(16, 0.6)
    first = await busy_and_due(rig)
    burst = await submit(batcher, range(1, 17), 0.52)
    await wait_until(lambda: sum(t.done() for t in burst) == 3, "three refused")
    refused = [t for t in burst if t.done()]
    assert all(isinstance(t.exception(), DeadlineUnreachable) for t in refused)
    assert batcher.queue_depth == 13
    await finish(rig, [first, *(t for t in burst if t not in refused)])
    assert rig.backend.sizes == [1, 13]
