"""The gRPC front end: a ``grpc.aio`` server in the HTTP server's process and event loop.

It starts with the application (after the runtime), stops accepting calls the moment a drain
begins (SIGTERM or SIGINT, when HTTP readiness turns off), lets the calls in flight finish
within ``AIINFRA_GRACE_PERIOD_S``, and is stopped before the runtime closes its models.
"""

from __future__ import annotations

import asyncio
import logging

import grpc

from serving.rpc.service import handlers
from serving.runtime import Runtime

log = logging.getLogger(__name__)

# Messages a little over AIINFRA_MAX_REQUEST_BYTES still reach the handler, which refuses
# them with the same message HTTP gives; beyond this slack gRPC refuses them itself.
RECEIVE_SLACK_BYTES = 1024 * 1024


class GrpcFrontEnd:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.server: grpc.aio.Server | None = None
        self.port: int | None = None
        self._stopping: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        settings = self.runtime.settings
        options = [
            ("grpc.max_receive_message_length", settings.max_request_bytes + RECEIVE_SLACK_BYTES),
            ("grpc.max_send_message_length", -1),
            # Several uvicorn workers each bind the port (the kernel spreads connections);
            # one worker alone must fail loudly on a port already taken.
            ("grpc.so_reuseport", 1 if settings.workers > 1 else 0),
        ]
        server = grpc.aio.server(options=options)
        server.add_generic_rpc_handlers(handlers(self.runtime))
        address = f"{settings.host}:{settings.grpc_port}"
        try:
            port = server.add_insecure_port(address)  # older grpcio answers 0, newer raises
        except RuntimeError:
            port = 0
        if not port:
            raise RuntimeError(f"gRPC cannot listen on {address} (AIINFRA_GRPC_PORT): the "
                               "address is taken or not local")
        await server.start()
        self.server, self.port = server, port
        self._loop = asyncio.get_running_loop()
        self.runtime.on_drain.append(self._drain_soon)
        log.info("gRPC listening", extra={"address": f"{settings.host}:{port}"})

    def _drain_soon(self) -> None:
        """From the signal handler: begin the drain on the loop."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.drain)

    def drain(self) -> asyncio.Task | None:
        """Refuse new calls now; those in flight get the grace period."""
        if self.server is None:
            return None
        if self._stopping is None:
            grace = self.runtime.settings.grace_period_s
            self._stopping = asyncio.ensure_future(self.server.stop(grace))
        return self._stopping

    async def stop(self) -> None:
        stopping = self.drain()
        if stopping is not None:
            await stopping
