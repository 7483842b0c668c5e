"""Serving fixtures: an in-process app over a repository (the rest is in ``tests/support``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.metrics import ServingMetrics
from serving.settings import Settings


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    """Build a started TestClient over a repository; waits until the server is ready."""
    clients: list[TestClient] = []

    def make(repository: Path, *, wait_ready: bool = True, **overrides) -> TestClient:
        # In-process servers share the test process: leave its collector alone by default.
        overrides.setdefault("gc_freeze", False)
        settings = Settings(model_repository=repository, engine_cache_dir=tmp_path / "engines",
                            log_format="text", **overrides)
        client = TestClient(create_app(settings, ServingMetrics()))
        client.__enter__()
        clients.append(client)
        if wait_ready:
            deadline = time.monotonic() + 60
            while client.get("/v2/health/ready").status_code != 200:
                assert time.monotonic() < deadline, "server never became ready"
                time.sleep(0.02)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)
