"""The Redis tier: pooled connections, a hard limit on every call, and a breaker.

Every call from a request runs under ``timeout_s`` (a few milliseconds), connect included.
When Redis refuses connections, or calls keep timing out with no success between them for
``TIMEOUTS_OPEN_AFTER_S`` (a single stall of the event loop or the GIL can time out every call
in flight at once, and must not count as Redis being down), the tier opens its breaker: requests
skip Redis at no cost, one warning is logged, ``aiinfra_cache_redis_up`` drops to 0, and a
background task pings Redis with exponential back-off (and a patient connect timeout, so a
slow handshake never counts against a request). When the ping answers, the pool is warmed and
requests use Redis again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from redis import exceptions as redis_errors
from redis.asyncio import BlockingConnectionPool, Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from serving.metrics import ServingMetrics

log = logging.getLogger(__name__)

BACKOFF_MIN_S = 0.05
# Timeouts open the breaker after this long without a success (and at least
# FAILURES_TO_OPEN of them); a refused or reset connection opens it at once.
TIMEOUTS_OPEN_AFTER_S = 0.5
FAILURES_TO_OPEN = 3
CONNECT_TIMEOUT_S = 2.0  # the background reconnect's, never a request's
_FAILURES = (redis_errors.RedisError, OSError, TimeoutError)


class RedisTier:
    def __init__(self, url: str, *, timeout_s: float, pool_size: int, backoff_max_s: float,
                 max_value_bytes: int, metrics: ServingMetrics) -> None:
        self.timeout_s = timeout_s
        self.max_value_bytes = max_value_bytes
        self._backoff_max_s = max(backoff_max_s, BACKOFF_MIN_S)
        self._pool = BlockingConnectionPool.from_url(
            url, max_connections=pool_size, timeout=timeout_s, socket_timeout=timeout_s,
            socket_connect_timeout=CONNECT_TIMEOUT_S, retry=Retry(NoBackoff(), 0),
            health_check_interval=0)
        self._client = Redis(connection_pool=self._pool)
        self._pool_size = pool_size
        # Calls wait here, under their timeout, rather than for the pool: a busy pool is
        # then a timeout (counted towards the breaker) and never looks like Redis refusing.
        self._slots = asyncio.Semaphore(pool_size)
        self._up = False
        self._failures = 0
        self._failing_since = 0.0
        self._reconnect: asyncio.Task | None = None
        self._stores: set[asyncio.Task] = set()
        self._m_up = metrics.cache_redis_up
        self._m_errors = metrics.cache_errors
        self._m_up.set(0)

    @property
    def up(self) -> bool:
        return self._up

    async def start(self) -> None:
        """Connect in the background; requests skip Redis until it answers."""
        self._open_breaker(None)

    async def close(self) -> None:
        if self._reconnect is not None:
            self._reconnect.cancel()
            await asyncio.gather(self._reconnect, return_exceptions=True)
        if self._stores:
            await asyncio.wait(self._stores, timeout=1.0)
        await self._client.aclose()
        await self._pool.disconnect()

    # -- requests ------------------------------------------------------------------------
    async def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        """Values for ``keys`` in one round trip; absent, oversize and non-string keys are
        ``None``. Never raises: on failure every value is ``None``."""
        if not self._up:
            return [None] * len(keys)
        try:
            async with (asyncio.timeout(self.timeout_s), self._slots,
                        self._client.pipeline(transaction=False) as pipe):
                for key in keys:
                    # STRLEN first: an oversize value is never transferred.
                    pipe.strlen(key)
                    pipe.getrange(key, 0, self.max_value_bytes - 1)
                replies = await pipe.execute(raise_on_error=False)
        except _FAILURES as exc:
            self._failed(exc)
            return [None] * len(keys)
        self._failures = 0
        values: list[bytes | None] = []
        for length, value in zip(replies[::2], replies[1::2], strict=True):
            if isinstance(length, Exception) or isinstance(value, Exception):
                self._m_errors.labels("invalid").inc()  # e.g. WRONGTYPE: not a string
                values.append(None)
            elif length > self.max_value_bytes:
                self._m_errors.labels("oversize").inc()
                values.append(None)
            else:
                values.append(value or None)
        return values

    def set_many_soon(self, items: Sequence[tuple[bytes, bytes]], ttl_s: float) -> None:
        """Store in the background: the response never waits for Redis."""
        if not self._up or not items:
            return
        if len(self._stores) >= self._pool_size * 4:
            self._m_errors.labels("store_skipped").inc()
            return
        task = asyncio.create_task(self._set_many(items, max(1, int(ttl_s * 1000))))
        self._stores.add(task)
        task.add_done_callback(self._stores.discard)

    async def _set_many(self, items: Sequence[tuple[bytes, bytes]], ttl_ms: int) -> None:
        try:
            async with (asyncio.timeout(self.timeout_s), self._slots,
                        self._client.pipeline(transaction=False) as pipe):
                for key, value in items:
                    pipe.set(key, value, px=ttl_ms)
                await pipe.execute()
        except _FAILURES as exc:
            self._failed(exc)
        else:
            self._failures = 0

    # -- breaker -------------------------------------------------------------------------
    def _failed(self, exc: BaseException) -> None:
        timed_out = isinstance(exc, TimeoutError | redis_errors.TimeoutError)
        self._m_errors.labels("timeout" if timed_out else "connection").inc()
        if self._failures == 0:
            self._failing_since = time.monotonic()
        self._failures += 1
        if not self._up:
            return
        if not timed_out or (self._failures >= FAILURES_TO_OPEN and time.monotonic()
                             - self._failing_since >= TIMEOUTS_OPEN_AFTER_S):
            self._open_breaker(exc)

    def _open_breaker(self, exc: BaseException | None) -> None:
        if exc is not None:
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            log.warning("redis unavailable (%s); serving without it until it answers again",
                        detail)
        self._up = False
        self._m_up.set(0)
        if self._reconnect is None or self._reconnect.done():
            self._reconnect = asyncio.create_task(self._reconnect_loop(announce=exc is not None),
                                                  name="redis-reconnect")

    async def _reconnect_loop(self, *, announce: bool) -> None:
        delay = BACKOFF_MIN_S
        # Connections that saw the failure may be half-dead: start afresh, or the first
        # requests after the reconnect would trip the breaker again on stale sockets.
        await self._pool.disconnect(inuse_connections=True)
        while True:
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT_S + 1):
                    await self._client.ping()
                    await self._warm_pool()
            except _FAILURES:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._backoff_max_s)
                continue
            self._failures = 0
            self._up = True
            self._m_up.set(1)
            if announce:
                log.warning("redis answers again; prediction cache resumed")
            else:
                log.info("redis connected")
            return

    async def _warm_pool(self) -> None:
        """Open the pool's connections now, so that no request pays for a handshake."""
        connections = []
        try:
            for _ in range(self._pool_size):
                connections.append(await self._pool.get_connection())
        finally:
            for connection in connections:
                await self._pool.release(connection)
