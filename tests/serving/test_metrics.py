"""The Prometheus metrics after a known sequence of requests have exactly the expected values."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np
import orjson
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from serving.metrics import GpuCollector
from tests.support.models import SCALE_CONFIG, write_model

WAIT_S = 5.0
T = TypeVar("T")
ROWS = (1, 3, 1, 3, 1)  # the rows of the sequential successful requests

HTTP = {"protocol": "http"}  # the transport label of requests sent over HTTP


def infer_body(rows: int, width: int = 4, start: float = 0.0) -> dict:
    data = (np.arange(rows * width, dtype=np.float32) + start).tolist()
    return {"inputs": [{"name": "x", "datatype": "FP32", "shape": [rows, width], "data": data}]}


@pytest.fixture
def small_queue_repository(tmp_path: Path) -> Path:
    """The scale model with a queue of two, so that three requests fill it."""
    root = tmp_path / "small-queue"
    write_model(root, "scale", {**SCALE_CONFIG, "max_queue_size": 2})
    return root


def gate_instance(client, monkeypatch):
    """Make the model's only instance wait for the returned ``gate`` in each forward;
    ``entered`` is set once a batch is inside. Returns (batcher, gate, entered)."""
    batcher = client.app.state.runtime.registry.loaded("scale").batcher(None)
    backend = batcher._instances[0]
    gate, entered = threading.Event(), threading.Event()
    forward = backend.forward

    def gated_forward(arrays):
        entered.set()
        assert gate.wait(WAIT_S), "test gate never opened"
        return forward(arrays)

    monkeypatch.setattr(backend, "forward", gated_forward)
    return batcher, gate, entered


def with_full_queue(client, monkeypatch, probe: Callable[[], T]) -> T:
    """Block the model's only instance, queue two requests behind it, and call ``probe``.

    The three held requests must all succeed once the instance is released.
    """
    batcher, gate, entered = gate_instance(client, monkeypatch)
    with ThreadPoolExecutor(3) as pool:
        try:
            held = [pool.submit(client.post, "/v2/models/scale/infer", json=infer_body(1))]
            assert entered.wait(WAIT_S), "the first request never reached the backend"
            held += [pool.submit(client.post, "/v2/models/scale/infer", json=infer_body(1))
                     for _ in range(2)]
            deadline = time.monotonic() + WAIT_S
            while batcher.queue_depth != 2:
                assert time.monotonic() < deadline, "two requests never queued"
                time.sleep(0.002)
            result = probe()
        finally:
            gate.set()
        for future in held:
            response = future.result(WAIT_S)
            assert response.status_code == 200, response.text
    return result


def test_metrics_count_every_request_batch_and_rejection(make_client, small_queue_repository,
                                                         monkeypatch) -> None:
    client = make_client(small_queue_repository)
    runtime = client.app.state.runtime
    registry = runtime.metrics.registry

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    def scale(name: str, **labels: str) -> float | None:
        return value(name, model="scale", **labels)

    # k sequential successes, some carrying 3 rows: each runs as its own batch.
    for i, rows in enumerate(ROWS):
        response = client.post("/v2/models/scale/infer", json=infer_body(rows, start=i))
        assert response.status_code == 200, response.text

    # One invalid request (wrong shape) and one for a model that does not exist.
    response = client.post("/v2/models/scale/infer", json=infer_body(1, width=3))
    assert response.status_code == 400, response.text
    response = client.post("/v2/models/nope/infer", json=infer_body(1))
    assert response.status_code == 404, response.text

    # Fill the queue: block the only instance, queue two more, and the next is refused.
    def while_full():
        assert scale("aiinfra_queue_depth") == 2
        assert scale("aiinfra_inflight_requests") == 3
        return client.post("/v2/models/scale/infer", json=infer_body(1))

    refused = with_full_queue(client, monkeypatch, while_full)
    assert refused.status_code == 503, refused.text
    assert refused.headers["retry-after"] == "1"

    successes = len(ROWS) + 3
    samples = sum(ROWS) + 3
    executions = len(ROWS) + 2  # the two queued requests ran as one batch
    scale_ = {"model": "scale"}
    expected = [
        ("aiinfra_inference_requests_total", {**scale_, "outcome": "success", **HTTP}, successes),
        ("aiinfra_inference_requests_total", {**scale_, "outcome": "failure", **HTTP}, 2),
        ("aiinfra_inference_requests_total", {"model": "", "outcome": "failure", **HTTP}, 1),
        ("aiinfra_inferences_total", scale_, samples),
        ("aiinfra_executions_total", scale_, executions),
        ("aiinfra_batch_size_count", scale_, executions),
        ("aiinfra_batch_size_sum", scale_, samples),
        ("aiinfra_batch_size_bucket", {**scale_, "le": "2.0"}, executions - 2),  # two of 3 rows
        ("aiinfra_request_duration_seconds_count", {**scale_, "outcome": "success", **HTTP},
         successes),
        ("aiinfra_request_duration_seconds_count", {**scale_, "outcome": "failure", **HTTP}, 2),
        ("aiinfra_queue_duration_seconds_count", scale_, successes),
        ("aiinfra_compute_duration_seconds_count", scale_, executions),
        ("aiinfra_rejections_total", {**scale_, "reason": "invalid"}, 1),
        ("aiinfra_rejections_total", {**scale_, "reason": "queue_full"}, 1),
        ("aiinfra_rejections_total", {**scale_, "reason": "timeout"}, 0),
        ("aiinfra_rejections_total", {"model": "", "reason": "not_found"}, 1),
        ("aiinfra_model_load_duration_seconds_count", scale_, 1),
        ("aiinfra_queue_depth", scale_, 0),
        ("aiinfra_inflight_requests", scale_, 0),
        ("aiinfra_models_loaded", {}, 1),
    ]
    actual = [(name, labels, value(name, **labels)) for name, labels, _ in expected]
    assert actual == expected
    assert scale("aiinfra_model_load_duration_seconds_sum") > 0
    assert value("aiinfra_rejections_total", model="scale", reason="not_found") is None

    # GET /metrics serves the same values as Prometheus text.
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    scraped = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(response.text)
               for s in family.samples}
    for name, labels, count in expected:
        assert scraped.get((name, tuple(sorted(labels.items())))) == count, (name, labels)
    for name in ("aiinfra_inference_requests_total", "aiinfra_inferences_total",
                 "aiinfra_executions_total", "aiinfra_rejections_total",
                 "aiinfra_batch_size_bucket", "aiinfra_request_duration_seconds_bucket",
                 "aiinfra_queue_duration_seconds_bucket",
                 "aiinfra_compute_duration_seconds_bucket", "aiinfra_queue_depth",
                 "aiinfra_inflight_requests", "aiinfra_model_load_duration_seconds_count"):
        assert f"\n{name}{{" in response.text, name


def test_overload_status_and_retry_after_come_from_settings(make_client, small_queue_repository,
                                                            monkeypatch) -> None:
    client = make_client(small_queue_repository, overload_status=429, retry_after_s=3)

    refused = with_full_queue(
        client, monkeypatch,
        lambda: client.post("/v2/models/scale/infer", json=infer_body(1)))

    assert refused.status_code == 429, refused.text
    assert refused.headers["retry-after"] == "3"
    assert "queue is full" in refused.json()["error"]
    registry = client.app.state.runtime.metrics.registry
    assert registry.get_sample_value(
        "aiinfra_rejections_total", {"model": "scale", "reason": "queue_full"}) == 1


def test_gpu_collector_reads_nvml() -> None:
    class FakeNvml:
        @staticmethod
        def nvmlDeviceGetCount() -> int:
            return 1

        @staticmethod
        def nvmlDeviceGetHandleByIndex(index: int) -> str:
            return f"gpu{index}"

        @staticmethod
        def nvmlDeviceGetMemoryInfo(handle: str):
            return type("Memory", (), {"used": 3 << 30, "total": 80 << 30})()

        @staticmethod
        def nvmlDeviceGetUtilizationRates(handle: str):
            return type("Rates", (), {"gpu": 75})()

    registry = CollectorRegistry()
    registry.register(GpuCollector(FakeNvml))
    assert registry.get_sample_value("aiinfra_gpu_memory_used_bytes", {"gpu": "0"}) == 3 << 30
    assert registry.get_sample_value("aiinfra_gpu_memory_total_bytes", {"gpu": "0"}) == 80 << 30
    assert registry.get_sample_value("aiinfra_gpu_utilization_ratio", {"gpu": "0"}) == 0.75




def test_a_request_expiring_in_the_queue_counts_as_a_timeout_refusal(
        make_client, scale_repository: Path, monkeypatch) -> None:
    client = make_client(scale_repository)
    _, gate, entered = gate_instance(client, monkeypatch)
    with ThreadPoolExecutor(1) as pool:
        try:
            held = pool.submit(client.post, "/v2/models/scale/infer", json=infer_body(1))
            assert entered.wait(WAIT_S), "the first request never reached the backend"
            expired = client.post("/v2/models/scale/infer",
                                  json={**infer_body(1), "parameters": {"timeout": 50_000}})
        finally:
            gate.set()
        assert held.result(WAIT_S).status_code == 200
    assert expired.status_code == 503, expired.text
    assert "timeout expired" in expired.json()["error"]
    registry = client.app.state.runtime.metrics.registry

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"model": "scale", **labels})

    assert sample("aiinfra_rejections_total", reason="timeout") == 1
    assert sample("aiinfra_rejections_total", reason="queue_full") == 0
    assert sample("aiinfra_inference_requests_total", outcome="failure", protocol="http") == 1
    assert sample("aiinfra_inference_requests_total", outcome="success", protocol="http") == 1


def test_an_unexpected_error_is_counted_as_a_failure(make_client, scale_repository: Path,
                                                     monkeypatch) -> None:
    """An error no ServingError describes still leaves as a 500 and is counted: the error-rate
    alert must see it."""
    from serving import lifecycle  # noqa: PLC0415

    client = make_client(scale_repository)

    async def broken(*args, **kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr(lifecycle, "run_inference", broken)
    response = client.post("/v2/models/scale/infer", json=infer_body(1))
    assert response.status_code == 500
    assert response.json() == {"error": "internal error; see the server log"}
    registry = client.app.state.runtime.metrics.registry
    assert registry.get_sample_value("aiinfra_inference_requests_total",
                                     {"model": "scale", "outcome": "failure", **HTTP}) == 1
    assert registry.get_sample_value("aiinfra_inference_requests_total",
                                     {"model": "scale", "outcome": "success", **HTTP}) is None


def test_a_queued_request_whose_client_left_is_never_computed(make_client, scale_repository: Path,
                                                             monkeypatch) -> None:
    """Ray Serve cancels on disconnect; so do we: the queued request is dropped, counted as
    cancelled, and its batch slot goes to someone who is still waiting."""
    client = make_client(scale_repository)
    batcher, gate, entered = gate_instance(client, monkeypatch)
    seen: list[np.ndarray] = []
    backend = batcher._instances[0]
    gated = backend.forward

    def recording(arrays):
        seen.append(arrays[0].copy())
        return gated(arrays)

    monkeypatch.setattr(backend, "forward", recording)
    body = orjson.dumps(infer_body(1, start=500.0))
    sent: list[dict] = []
    delivered: list[bool] = []

    async def leaves_after_a_while():
        if not delivered:
            delivered.append(True)
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(0.2)
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/v2/models/scale/infer",
             "raw_path": b"/v2/models/scale/infer", "query_string": b"", "root_path": "",
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80),
             "headers": [(b"content-type", b"application/json"),
                         (b"content-length", str(len(body)).encode())]}
    with ThreadPoolExecutor(1) as pool:
        try:
            held = pool.submit(client.post, "/v2/models/scale/infer", json=infer_body(1))
            assert entered.wait(WAIT_S), "the first request never reached the backend"
            client.portal.call(client.app, scope, leaves_after_a_while, send)
        finally:
            gate.set()
        assert held.result(WAIT_S).status_code == 200
    assert sent == []  # nobody to answer
    assert all(batch[0, 0] != 500.0 for batch in seen), "the abandoned request was computed"
    registry = client.app.state.runtime.metrics.registry
    assert registry.get_sample_value("aiinfra_inference_requests_total",
                                     {"model": "scale", "outcome": "cancelled", **HTTP}) == 1
    assert registry.get_sample_value("aiinfra_inference_requests_total",
                                     {"model": "scale", "outcome": "success", **HTTP}) == 1
    assert registry.get_sample_value("aiinfra_inflight_requests", {"model": "scale"}) == 0
    assert registry.get_sample_value("aiinfra_request_duration_seconds_count",
                                     {"model": "scale", "outcome": "cancelled", **HTTP}) == 1


def test_a_request_cancelled_by_the_server_is_logged_as_cancelled(
        make_client, scale_repository: Path, monkeypatch) -> None:
    """uvicorn cancels handlers it gives up on (its graceful-shutdown timeout): such a request
    is neither a success nor silently 'ok' in the prediction log."""
    from serving.routes.infer import handle_infer  # noqa: PLC0415

    client = make_client(scale_repository)
    runtime = client.app.state.runtime
    records: list[dict] = []
    monkeypatch.setattr(runtime, "predlog", type("Log", (), {
        "record": staticmethod(lambda **kw: records.append(kw)), "publish": lambda self: None,
        "close": lambda self: asyncio.sleep(0)})())
    _, gate, entered = gate_instance(client, monkeypatch)
    body = orjson.dumps(infer_body(1))
    sent_body: list[bool] = []

    async def receive():  # as ASGI servers do: after the body, wait until the client leaves
        if not sent_body:
            sent_body.append(True)
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()

    async def cancelled_while_running() -> None:
        task = asyncio.create_task(handle_infer(runtime, "scale", None, receive, len(body), None))
        while not entered.is_set():
            await asyncio.sleep(0.01)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    try:
        client.portal.call(cancelled_while_running)
    finally:
        gate.set()
    assert [r["status"] for r in records] == ["cancelled"]
    assert runtime.metrics.registry.get_sample_value(
        "aiinfra_request_duration_seconds_count",
        {"model": "scale", "outcome": "cancelled", **HTTP}) == 1
    registry = runtime.metrics.registry
    assert registry.get_sample_value("aiinfra_inference_requests_total",
                                     {"model": "scale", "outcome": "cancelled", **HTTP}) == 1
    assert registry.get_sample_value("aiinfra_inference_requests_total",
                                     {"model": "scale", "outcome": "success", **HTTP}) is None
