"""Servers the benchmarks (and the tests) start: a free loopback port, ``aiinfra serve`` as a
process, and a wait until it answers.

Every server logs to a file, never to a pipe nobody reads (a full pipe would stall it), and
the file's tail goes into the error when the server exits or never becomes ready.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx

READY_PROBE = "/v2/health/ready"
# The runtime's own command: it works where only the runtime is installed.
SERVE = (sys.executable, "-m", "serving.cli", "serve")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def loopback_url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


@dataclass
class Server:
    """A started server process and where it answers."""

    process: subprocess.Popen
    url: str
    log_path: Path
    ready_s: float = 0.0
    grpc_port: int | None = None  # aiinfra's gRPC port, when it serves gRPC
    _owned_log: bool = field(default=False, repr=False)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the server and whatever it started (uvicorn's workers): its own process
        group, so that no worker outlives a killed parent."""
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Send ``sig`` (a drain, by default) and wait; kill if it does not exit in time.
        Whatever of its process group is still running once it has exited is killed: a
        server whose first process exits while its children go on (LitServe's) would
        otherwise take CPU from everything measured after it."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.process.wait(10)
        finally:
            self.kill()
            if self._owned_log:
                with suppress(OSError):
                    self.log_path.unlink()


def start_server(command: Sequence[str], url: str, *, probe: str = READY_PROBE,
                 env: Mapping[str, str] | None = None, inherit_env: bool = True,
                 log_path: Path | None = None, timeout_s: float = 180) -> Server:
    """Start ``command`` and return once ``url + probe`` answers 200.

    ``env`` is added to this process's environment (or replaces it, without
    ``inherit_env``). Raises ``RuntimeError`` with the log's tail if the process exits or
    is not ready within ``timeout_s``; the process is gone by then.
    """
    owned = log_path is None
    if owned:
        handle, name = tempfile.mkstemp(prefix="aiinfra-server-", suffix=".log")
        os.close(handle)
        log_path = Path(name)
    environment = {**os.environ, **(env or {})} if inherit_env else dict(env or {})
    grpc_port = None
    if "serving.cli" in command and environment.get("AIINFRA_GRPC", "true") != "false":
        # gRPC binds its own port: a free one unless the caller chose, so that servers
        # started one after another (or beside another) never meet on the default 8001.
        environment.setdefault("AIINFRA_GRPC_PORT", str(free_port()))
        grpc_port = int(environment["AIINFRA_GRPC_PORT"])
    started = time.perf_counter()
    with log_path.open("wb") as log:
        process = subprocess.Popen(list(command), stdout=log, stderr=subprocess.STDOUT,
                                   env=environment, start_new_session=True)
    server = Server(process, url, log_path, grpc_port=grpc_port, _owned_log=owned)
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=1.0) as client:
        while True:
            if process.poll() is not None:
                tail = server.log()[-3000:]
                server.stop()
                raise RuntimeError(f"{' '.join(command)} exited with {process.returncode}:\n"
                                   f"{tail}")
            with suppress(httpx.HTTPError):
                if client.get(url + probe).status_code == 200:
                    server.ready_s = time.perf_counter() - started
                    return server
            if time.monotonic() > deadline:
                tail = server.log()[-3000:]
                server.stop(signal.SIGKILL)
                raise RuntimeError(f"{' '.join(command)} not ready after {timeout_s:.0f} s:\n"
                                   f"{tail}")
            time.sleep(0.05)


@contextmanager
def running(command: Sequence[str], url: str, **options) -> Iterator[Server]:
    """``start_server`` for the length of a ``with`` block; drained (SIGTERM) after it."""
    server = start_server(command, url, **options)
    try:
        yield server
    finally:
        server.stop()
