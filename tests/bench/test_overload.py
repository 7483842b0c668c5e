"""The overload benchmark: clients that honour Retry-After, and the summary of its rounds."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import orjson
import pytest
import uvicorn

from bench import wrk
from bench.loadgen import run_against
from bench.overload import summarize_rounds
from bench.process import free_port, loopback_url

METADATA = {"name": "m", "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
            "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 4]}]}


def refusing_app(posts: list[float]):
    """Answers the metadata, and every infer with 503 and ``Retry-After: 1``."""

    async def app(scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] == "POST":
            while (await receive()).get("more_body"):
                pass
            posts.append(time.monotonic())
            status, body, extra = 503, b'{"error": "busy"}', [(b"Retry-After", b"1")]
        else:
            status, body, extra = 200, orjson.dumps(METADATA), []
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), *extra,
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return app


@contextmanager
def refusing_server() -> Iterator[tuple[str, list[float]]]:
    posts: list[float] = []
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(refusing_app(posts), host="127.0.0.1", port=port,
                                           log_config=None, lifespan="off"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the server never started"
        time.sleep(0.02)
    try:
        yield loopback_url(port), posts
    finally:
        server.should_exit = True
        thread.join(20)


@pytest.mark.slow
@pytest.mark.parametrize("honour", [False, True])
def test_wrk_waits_what_retry_after_asks_only_when_told(honour: bool) -> None:
    with refusing_server() as (url, posts):
        result = wrk.run_wrk(url, model="m", concurrency=2, payload="json", duration_s=2,
                             warmup_s=0, metadata=METADATA, honour_retry_after=honour)
    refused = result["statuses"].get("503", 0)
    if honour:
        # each connection: one request, a 1 s wait, another... 3 in 2 s, and a fourth
        # where wrk's window ends a little after the third wait (7 seen once)
        assert 1 <= refused <= 8
    else:
        assert refused > 100
    assert result["honour_retry_after"] is honour
    assert len(posts) >= refused


@pytest.mark.slow
@pytest.mark.parametrize("honour", [False, True])
def test_the_python_generator_waits_what_retry_after_asks_only_when_told(honour: bool) -> None:
    with refusing_server() as (url, _):
        result = run_against(url, model="m", concurrency=2, payload="json", duration_s=2,
                             warmup_s=0, honour_retry_after=honour)
    refused = result["statuses"].get("503", 0)
    if honour:
        assert 1 <= refused <= 6
    else:
        assert refused > 50


def _outcomes(p50: float, p99: float, within: float, ok: int, refused: int) -> dict:
    return {"within_deadline": within, "statuses": {"200": ok, "503": refused},
            "latency_by_status": {"200": {"count": ok, "p50_ms": 400.0, "p99_ms": 900.0},
                                  "503": {"count": refused, "p50_ms": p50, "p99_ms": p99}},
            "p99_ms": 900.0}


def _wrk(rps: float, timeouts: int = 0) -> dict:
    return {"inferences_per_s": rps, "rps": rps, "socket_errors": {"timeout": timeouts}
            if timeouts else {}, "statuses": {"200": 10, "503": 90}}


def test_the_summary_takes_medians_per_side_and_keeps_backoff_apart() -> None:
    rounds = [
        {"outcomes": _outcomes(60, 150, 0.4, 10, 90), "saturated": _outcomes(0, 0, 1, 50, 0),
         "wrk": _wrk(15, timeouts=1), "outcomes_backoff": _outcomes(5, 20, 0.99, 30, 10),
         "wrk_backoff": _wrk(30)},
        {"outcomes": _outcomes(70, 170, 0.5, 10, 90), "saturated": _outcomes(0, 0, 1, 50, 0),
         "wrk": _wrk(17), "outcomes_backoff": _outcomes(7, 30, 1.0, 30, 10),
         "wrk_backoff": _wrk(32)},
        {"outcomes": _outcomes(80, 190, 0.6, 10, 90), "saturated": _outcomes(0, 0, 1, 50, 0),
         "wrk": _wrk(16), "outcomes_backoff": _outcomes(9, 40, 0.98, 30, 10),
         "wrk_backoff": _wrk(31)},
    ]
    for one in rounds:
        one["saturated"]["statuses"] = {"200": 50}
    summary = summarize_rounds({"rounds": rounds, "ceiling": {"inferences_per_s": 32.0}})
    assert summary["refusal_p50_ms"] == 70
    assert summary["refusal_p99_ms"] == 170
    assert summary["within_deadline"] == 0.5
    assert summary["refused_share"] == 0.9
    assert summary["served_vs_ceiling"] == 0.5
    assert summary["wrk_socket_errors"] == 1
    assert summary["saturated_refused"] == 0
    assert summary["backoff_refusal_p50_ms"] == 7
    assert summary["backoff_within_deadline"] == 0.99
    assert summary["backoff_refused_share"] == 0.25
    assert summary["backoff_served_vs_ceiling"] == 31 / 32
    assert summary["backoff_wrk_socket_errors"] == 0
