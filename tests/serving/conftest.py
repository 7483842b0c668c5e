"""Serving fixtures: small model repositories, an in-process app, and a real server process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis
import torch
import yaml
from fastapi.testclient import TestClient
from torch import nn

from serving.app import create_app
from serving.demo import build_demo_repository, export_model
from serving.metrics import ServingMetrics
from serving.settings import Settings
from tests.serving.servers import PostgresServer, RedisServer, start_store


class Scale(nn.Module):
    """y = x * 2 (same dtype), and the row sums as a second output."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x * 2, x.sum(dim=1, keepdim=True)


def write_model(root: Path, name: str, config: dict, module: nn.Module | None = None,
                example: torch.Tensor | None = None, version: int = 1) -> Path:
    """Export ``module`` (default: Scale over FP32 [-1, 4]) into ``root/name/version``."""
    module = module if module is not None else Scale()
    example = example if example is not None else torch.zeros(2, 4)
    export_model(module, example, max(config.get("max_batch_size", 8), 2),
                 root / name / str(version) / "model.pt2")
    (root / name / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root / name


SCALE_CONFIG = {
    "backend": "eager",
    "max_batch_size": 8,
    "max_queue_delay_ms": 5,
    "max_queue_size": 16,
    "inputs": [{"name": "x", "datatype": "FP32", "dims": [4]}],
    "outputs": [{"name": "y", "datatype": "FP32", "dims": [4]},
                {"name": "total", "datatype": "FP32", "dims": [1]}],
}


@pytest.fixture(scope="session")
def demo_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo_repository(tmp_path_factory.mktemp("demo") / "repository")


@pytest.fixture
def scale_repository(tmp_path: Path) -> Path:
    root = tmp_path / "repository"
    write_model(root, "scale", SCALE_CONFIG)
    return root


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    def __init__(self, process: subprocess.Popen, url: str, log_path: Path) -> None:
        self.process = process
        self.url = url
        self.log_path = log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start ``aiinfra serve`` as a real process on a free loopback port."""
    servers: list[ServerProcess] = []

    def start(repository: Path, *, extra_env: dict[str, str] | None = None,
              args: tuple[str, ...] = ()) -> ServerProcess:
        port = free_port()
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("AIINFRA_") and k != "PROMETHEUS_MULTIPROC_DIR"}
        env.update({"AIINFRA_LOG_FORMAT": "text",
                    "AIINFRA_ENGINE_CACHE_DIR": str(tmp_path / "engines")})
        env.update(extra_env or {})
        log_path = tmp_path / f"server-{port}.log"
        process = subprocess.Popen(
            [sys.executable, "-m", "serving.cli", "serve", "--repository", str(repository),
             "--host", "127.0.0.1", "--port", str(port), *args],
            stdout=log_path.open("wb"), stderr=subprocess.STDOUT, env=env)
        server = ServerProcess(process, f"http://127.0.0.1:{port}", log_path)
        servers.append(server)
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, f"server exited early:\n{server.log()}"
            try:
                if httpx.get(f"{server.url}/v2/health/ready", timeout=1).status_code == 200:
                    return server
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"server never became ready:\n{server.log()}"
            time.sleep(0.1)

    yield start
    for server in servers:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait(10)


# -- real data stores ---------------------------------------------------------------------
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
