"""``aiinfra serve`` as a real process on a free loopback port, stopped after the test."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn

from bench import process
from bench.process import SERVE, Server, free_port, loopback_url

__all__ = ["Server", "serving_in_thread", "start_server"]


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start ``aiinfra serve`` on a repository; returns once it is ready. The test's own
    ``AIINFRA_*`` variables are not passed on: only ``extra_env`` and the defaults here."""
    servers: list[Server] = []

    def start(repository: Path, *, extra_env: dict[str, str] | None = None,
              args: tuple[str, ...] = ()) -> Server:
        port = free_port()
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("AIINFRA_") and k != "PROMETHEUS_MULTIPROC_DIR"}
        env.update({"AIINFRA_LOG_FORMAT": "text",
                    "AIINFRA_ENGINE_CACHE_DIR": str(tmp_path / "engines")})
        env.update(extra_env or {})
        command = [*SERVE, "--repository", str(repository), "--host", "127.0.0.1",
                   "--port", str(port), *args]
        try:
            server = process.start_server(command, loopback_url(port), env=env, inherit_env=False,
                                  log_path=tmp_path / f"server-{port}.log", timeout_s=90)
        except RuntimeError as exc:
            pytest.fail(str(exc))
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.kill()  # its workers too, even when a test already killed the parent
        if server.process.poll() is None:
            server.process.wait(10)


@contextmanager
def serving_in_thread(app, port: int, timeout_s: float = 20) -> Iterator[None]:
    """Run ``app`` (from ``serving.app.create_app``) under uvicorn on 127.0.0.1:``port`` in a
    thread of this process (so that a test can reach into its models), ready on entry and
    stopped on exit."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                           lifespan="on"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    runtime = app.state.runtime
    deadline = time.monotonic() + timeout_s
    while not (server.started and runtime.is_ready):
        assert time.monotonic() < deadline, "the server never became ready"
        time.sleep(0.02)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout_s)
