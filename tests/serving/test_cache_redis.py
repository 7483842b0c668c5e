"""The Redis tier against a real ``redis-server``: hits across the tier, values that must not
be served, Redis down at start, and calls that hang (the hard timeout and the breaker)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient

from serving.cache.codec import encode_value
from serving.cache.keys import cache_key, row_digests
from serving.cache.remote import FAILURES_TO_OPEN, RedisTier
from serving.metrics import ServingMetrics
from tests.serving.test_cache import CACHED_CONFIG, INFER, Meter, body, outputs
from tests.support.models import write_model
from tests.support.services import RedisServer

pytestmark = pytest.mark.slow

MakeClient = Callable[..., TestClient]
WAIT_S = 10.0


@pytest.fixture
def cached_repository(tmp_path: Path) -> Path:
    root = tmp_path / "cached"
    write_model(root, "scale", CACHED_CONFIG)
    return root


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def redis_ready(client: TestClient) -> tuple[TestClient, Meter]:
    """Wait until ``client``'s Redis tier has connected."""
    meter = Meter(client)
    wait_for(lambda: meter("aiinfra_cache_redis_up") == 1, "the Redis tier to connect")
    return client, meter


def row_key(client: TestClient, row: list[float], version: int = 1) -> bytes:
    """The key ``client`` stores ``row`` under: replicas of one artifact share it."""
    x = np.asarray([row], dtype=np.float32)
    fingerprint = client.app.state.runtime.registry.loaded("scale").fingerprints[version]
    return cache_key("aiinfra:", "scale", version, fingerprint,
                     row_digests(["x"], ["FP32"], [x])[0])


def test_predictions_are_shared_through_redis(cached_repository: Path, make_client: MakeClient,
                                              redis_url: str) -> None:
    # Two servers (as two replicas) without an in-process tier: what one computes, the
    # other reads from Redis.
    first, first_meter = redis_ready(
        make_client(cached_repository, redis_url=redis_url, cache_local_max_bytes=0))
    second, second_meter = redis_ready(
        make_client(cached_repository, redis_url=redis_url, cache_local_max_bytes=0))
    computed = outputs(first.post(INFER, json=body([[1, 2, 3, 4]])))
    store = redis.Redis.from_url(redis_url)
    wait_for(lambda: store.exists(row_key(first, [1, 2, 3, 4])), "the background store")
    assert row_key(first, [1, 2, 3, 4]) == row_key(second, [1, 2, 3, 4])
    assert 0 < store.pttl(row_key(first, [1, 2, 3, 4])) <= 60_000
    assert outputs(second.post(INFER, json=body([[1, 2, 3, 4]]))) == computed
    assert second_meter.inferences() == 0
    assert second_meter.hits("redis") == 1
    # Several rows: one pipelined look-up, hits and misses mixed.
    mixed = outputs(second.post(INFER, json=body([[5, 5, 5, 5], [1, 2, 3, 4]])))
    assert mixed["total"] == [20.0, 10.0]
    assert second_meter.inferences() == 1
    assert second_meter.hits("redis") == 2
    assert first_meter.hits("redis") == 0


def _wrong_shape() -> bytes:
    return encode_value([np.ones((1, 3), np.float32), np.ones((1, 1), np.float32)])


@pytest.mark.parametrize(("plant", "reason"), [
    (lambda store, key: store.set(key, b"\x00garbage\xff" * 10), "invalid"),
    (lambda store, key: store.set(key, _wrong_shape()), "invalid"),
    (lambda store, key: store.set(key, b"A" * 5000), "oversize"),
    (lambda store, key: store.rpush(key, b"a", b"b"), "invalid"),
], ids=["garbage", "wrong-shape", "oversize", "not-a-string"])
def test_values_that_are_not_ours_are_misses(cached_repository: Path, make_client: MakeClient,
                                             redis_url: str, plant, reason: str) -> None:
    client, meter = redis_ready(
        make_client(cached_repository, redis_url=redis_url, cache_local_max_bytes=0,
                    cache_max_value_bytes=2048))
    store = redis.Redis.from_url(redis_url)
    key = row_key(client, [1, 2, 3, 4])
    plant(store, key)
    assert outputs(client.post(INFER, json=body([[1, 2, 3, 4]]))) == {
        "y": [2.0, 4.0, 6.0, 8.0], "total": [10.0]}
    assert meter.inferences() == 1
    assert meter.hits("redis") == 0
    assert meter("aiinfra_cache_errors_total", reason=reason) == 1
    # The computed prediction replaces what was there, and is then served.
    wait_for(lambda: store.type(key) == b"string" and store.get(key).startswith(b"AIC1"),
             "the correct value to be stored")
    outputs(client.post(INFER, json=body([[1, 2, 3, 4]])))
    assert meter.hits("redis") == 1
    assert meter.inferences() == 1


def test_redis_down_at_start_then_back(cached_repository: Path, make_client: MakeClient,
                                       redis_server: RedisServer, redis_url: str) -> None:
    redis_server.kill()
    client = make_client(cached_repository, redis_url=redis_url, cache_local_max_bytes=0,
                         redis_backoff_max_s=0.2)
    meter = Meter(client)
    for _ in range(20):
        outputs(client.post(INFER, json=body([[1, 2, 3, 4]])))
    assert meter("aiinfra_cache_redis_up") == 0
    assert meter.inferences() == 20
    # While the breaker is open requests do not call Redis at all: no error per request.
    assert meter("aiinfra_cache_errors_total", reason="connection") == 0
    redis_server.start()
    wait_for(lambda: meter("aiinfra_cache_redis_up") == 1, "the reconnect")
    outputs(client.post(INFER, json=body([[1, 2, 3, 4]])))
    store = redis.Redis.from_url(redis_url)
    wait_for(lambda: store.exists(row_key(client, [1, 2, 3, 4])), "the background store")
    outputs(client.post(INFER, json=body([[1, 2, 3, 4]])))
    assert meter.hits("redis") == 1


async def test_a_hung_redis_costs_at_most_the_timeout(redis_server: RedisServer,
                                                      redis_url: str) -> None:
    metrics = ServingMetrics()
    tier = RedisTier(redis_url, timeout_s=0.05, pool_size=4, backoff_max_s=0.2,
                     max_value_bytes=1 << 20, metrics=metrics)
    await tier.start()
    try:
        deadline = time.monotonic() + WAIT_S
        while not tier.up:
            assert time.monotonic() < deadline, "never connected"
            await asyncio.sleep(0.01)
        tier.set_many_soon([(b"k", b"v")], ttl_s=60)
        await asyncio.sleep(0.05)
        assert await tier.get_many([b"k", b"absent"]) == [b"v", None]

        os.kill(redis_server.process.pid, signal.SIGSTOP)  # alive, but answers nothing
        try:
            calls = 0
            deadline = time.monotonic() + WAIT_S
            while tier.up:
                assert time.monotonic() < deadline, "the breaker never opened"
                started = time.monotonic()
                assert await tier.get_many([b"k"]) == [None]
                # Bounded by the timeout (plus scheduling slack), not by the hang.
                assert time.monotonic() - started < 1.0, f"call {calls} was not cut off"
                calls += 1
            assert calls >= FAILURES_TO_OPEN
            timeouts = metrics.registry.get_sample_value(
                "aiinfra_cache_errors_total", {"reason": "timeout"})
            assert timeouts == calls
            for _ in range(5):  # an open breaker skips Redis: no call, so no new error
                assert await tier.get_many([b"k"]) == [None]
            assert metrics.registry.get_sample_value(
                "aiinfra_cache_errors_total", {"reason": "timeout"}) == timeouts
        finally:
            os.kill(redis_server.process.pid, signal.SIGCONT)
        deadline = time.monotonic() + WAIT_S
        while not tier.up:
            assert time.monotonic() < deadline, "never reconnected"
            await asyncio.sleep(0.01)
        assert await tier.get_many([b"k"]) == [b"v"]
        assert metrics.registry.get_sample_value("aiinfra_cache_redis_up") == 1
    finally:
        await tier.close()
