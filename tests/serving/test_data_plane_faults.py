"""Faults under load on a real ``aiinfra serve``: Redis killed, Postgres stopped. The server
answers every request meanwhile, the cache resumes when Redis returns, and every request is
in the prediction log exactly once unless counted as dropped."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.serving.test_cache import CACHED_CONFIG, INFER, body
from tests.support.models import write_model
from tests.support.services import PostgresServer, RedisServer

pytestmark = pytest.mark.slow

WAIT_S = 20.0
MAX_REQUESTS = 50_000  # per load run, whatever the time
MAX_LOAD_S = 60.0
DISTINCT_ROWS = 16


class Load:
    """``threads`` closed loops of infer requests over a few distinct rows, until stopped."""

    def __init__(self, url: str, threads: int = 4) -> None:
        self.url = url
        self.statuses: Counter = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sent = 0
        self._threads = [threading.Thread(target=self._loop, args=(i,), daemon=True)
                         for i in range(threads)]
        self._deadline = time.monotonic() + MAX_LOAD_S

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _loop(self, index: int) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            i = index
            while not self._stop.is_set() and time.monotonic() < self._deadline:
                with self._lock:
                    if self._sent >= MAX_REQUESTS:
                        return
                    self._sent += 1
                row = [float(i % DISTINCT_ROWS)] * 4
                i += 1
                try:
                    status = client.post(INFER, json=body([row])).status_code
                except httpx.HTTPError:
                    status = 0
                with self._lock:
                    self.statuses[status] += 1

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.statuses.values())


def metric(url: str, name: str, **labels: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def cached_repository(tmp_path: Path) -> Path:
    root = tmp_path / "cached"
    write_model(root, "scale", CACHED_CONFIG)
    return root


def test_redis_killed_under_load(cached_repository: Path, start_server,
                                 redis_server: RedisServer, redis_url: str) -> None:
    server = start_server(cached_repository, extra_env={
        "AIINFRA_REDIS_URL": redis_url, "AIINFRA_CACHE_LOCAL_MAX_BYTES": "0",
        "AIINFRA_REDIS_BACKOFF_MAX_S": "0.2"})
    url = server.url

    def redis_hits() -> float:
        return metric(url, "aiinfra_cache_hits_total", model="scale", tier="redis")

    with Load(url) as load:
        wait_for(lambda: redis_hits() > 50, "hits from Redis")
        redis_server.kill()
        wait_for(lambda: metric(url, "aiinfra_cache_redis_up") == 0, "the breaker to open")
        served_while_down = load.total
        wait_for(lambda: load.total > served_while_down + 200, "requests while Redis is down")
        hits_while_down = redis_hits()
        redis_server.start()
        wait_for(lambda: metric(url, "aiinfra_cache_redis_up") == 1, "the reconnect")
        wait_for(lambda: redis_hits() > hits_while_down + 50, "the cache to resume")
    assert load.total > 0
    assert load.statuses == {200: load.total}, f"failed requests: {load.statuses}"
    warnings = [line for line in server.log().splitlines() if "redis unavailable" in line]
    assert len(warnings) == 1, "one log line while Redis is down"


def test_postgres_stopped_under_load(cached_repository: Path, start_server,
                                     postgres: PostgresServer, database_url: str) -> None:
    server = start_server(cached_repository, extra_env={
        "AIINFRA_DATABASE_URL": database_url, "AIINFRA_PREDLOG_BUFFER_SIZE": "200",
        "AIINFRA_PREDLOG_BATCH_SIZE": "100", "AIINFRA_PREDLOG_FLUSH_INTERVAL_MS": "20"})
    url = server.url

    def value(name: str) -> float:
        return metric(url, name)

    with Load(url) as load:
        wait_for(lambda: value("aiinfra_predlog_written_total") > 100, "records written")
        postgres.stop()
        wait_for(lambda: value("aiinfra_predlog_dropped_total") > 0, "the buffer to overflow")
        postgres.start()
        written = value("aiinfra_predlog_written_total")
        wait_for(lambda: value("aiinfra_predlog_written_total") > written + 100,
                 "writing to resume")
    assert load.total > 0
    assert load.statuses == {200: load.total}, f"failed requests: {load.statuses}"
    wait_for(lambda: value("aiinfra_predlog_buffered_records") == 0, "the buffer to drain")
    records = value("aiinfra_predlog_records_total")
    dropped = value("aiinfra_predlog_dropped_total")
    assert records == load.total, "one record per request"
    assert dropped > 0
    with psycopg.connect(database_url) as conn:
        (logged,) = conn.execute("SELECT count(*) FROM predictions").fetchone()
    assert logged == records - dropped
