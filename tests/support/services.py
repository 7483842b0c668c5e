"""Throwaway PostgreSQL and Redis servers for tests: real servers on loopback, no mocks.

``make test`` installs both (``make services``). Where one is still missing, a test that
needs it is skipped with the install command, except under ``CI=true``, where it fails: a
run that quietly skipped the data-plane tests must not pass.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis

from bench.stores import PostgresServer, RedisServer, StoreUnavailable

__all__ = ["PostgresServer", "RedisServer", "in_ci", "start_store"]


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def start_store(kind: type[PostgresServer] | type[RedisServer]):
    """Start a server; without its binaries skip the test, or fail it in CI."""
    try:
        return kind()
    except StoreUnavailable as exc:
        if in_ci():
            pytest.fail(f"{exc}; CI must have it (`make services` installs it)")
        pytest.skip(f"{exc} (or run `make services`)")


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session; each test gets its own database."""
    server = start_store(PostgresServer)
    yield server
    server.close()


@pytest.fixture
def database_url(postgres: PostgresServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty database; the server is running again after the test, whatever it did."""
    if not postgres.running:
        postgres.start()
    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name)[:50].lower()
    yield postgres.create_database(name)
    if not postgres.running:
        postgres.start()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = start_store(RedisServer)
    yield server
    server.close()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """The session's Redis, emptied; running again after the test, whatever it did."""
    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.start()
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()
    yield redis_server.url
    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.start()
