"""Readiness says what is true: off while draining (server and model), off with a dead batch
worker, off until start-up models are served, and the body says why (review #35)."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest

from serving.runtime import Runtime, _chain_drain_signals


def test_a_model_is_not_ready_while_the_server_drains(make_client, scale_repository: Path
                                                      ) -> None:
    client = make_client(scale_repository)
    assert client.get("/v2/models/scale/ready").status_code == 200
    client.app.state.runtime.draining = True
    assert client.get("/v2/models/scale/ready").status_code == 503
    assert client.get("/v2/models/scale/versions/1/ready").status_code == 503
    ready = client.get("/v2/health/ready")
    assert ready.status_code == 503
    assert ready.json() == {"ready": False, "reason": "draining: shutting down"}


def test_readiness_names_why_it_is_off(make_client, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    client = make_client(empty, wait_ready=False, environment="production")
    runtime = client.app.state.runtime
    deadline = time.monotonic() + 10
    while runtime.startup_error is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    body = client.get("/v2/health/ready").json()
    assert body["ready"] is False
    assert body["reason"].startswith("no model to serve")


def test_a_dead_batch_worker_takes_the_server_and_its_model_out(make_client,
                                                                scale_repository: Path) -> None:
    """A batch worker that died (a bug, an error escaping the loop) leaves its queue with no
    consumer: every request would wait for its timeout. Readiness turns off instead."""
    client = make_client(scale_repository)
    model = client.app.state.runtime.registry.loaded("scale")
    (batcher,) = model.batchers.values()
    (task,) = batcher._tasks
    task.get_loop().call_soon_threadsafe(task.cancel)
    deadline = time.monotonic() + 5
    while not task.done():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    ready = client.get("/v2/health/ready")
    assert ready.status_code == 503
    assert ready.json()["reason"] == "model 'scale' version 1 has no running batch worker"
    assert client.get("/v2/models/scale/ready").status_code == 503


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigint_drains_like_sigterm(signum: int) -> None:
    """uvicorn drains on SIGINT (Ctrl-C) as on SIGTERM: readiness must turn off for both, and
    the gRPC front end must be told to stop taking calls."""
    assert threading.current_thread() is threading.main_thread()
    seen: list[int] = []
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        for s in previous:
            signal.signal(s, lambda number, _frame: seen.append(number))
        runtime = Runtime.__new__(Runtime)
        runtime.draining = False
        drains: list[bool] = []
        runtime.on_drain = [lambda: drains.append(runtime.draining)]  # the gRPC front end's
        _chain_drain_signals(runtime)
        signal.raise_signal(signum)
        assert runtime.draining is True
        assert drains == [True]  # told once, after readiness turned off
        assert seen == [signum]  # uvicorn's own handler still runs
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
