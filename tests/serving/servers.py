"""Throwaway PostgreSQL and Redis servers for tests: real servers on loopback, no mocks."""

from __future__ import annotations

import os

import pytest

from serving.bench.stores import PostgresServer, RedisServer, StoreUnavailable, free_port

__all__ = ["PostgresServer", "RedisServer", "free_port", "start_store"]


def start_store(kind: type[PostgresServer] | type[RedisServer]):
    """Start a server; without its binaries skip the test, or fail it in CI (which installs
    them: see .ci/run)."""
    try:
        return kind()
    except StoreUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc} (.ci/run installs it)")
        pytest.skip(str(exc))
