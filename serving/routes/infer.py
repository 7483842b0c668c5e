"""``POST /v2/models/{m}[/versions/{v}]/infer`` in JSON or binary tensors, as a raw ASGI app.

The infer path is the hot path: for small models FastAPI's routing, dependency and middleware
layers cost more than decoding, batching and the forward pass together (profiled with py-spy,
see docs/BENCHMARKS.md). ``InferFastPath`` answers that one route itself and hands every
other request, and the lifespan, to the FastAPI application.
"""

from __future__ import annotations

import asyncio
import logging
import re

from serving import tracing
from serving.errors import ClientDisconnected, RequestCancelled, ServingError
from serving.lifecycle import serve_infer
from serving.protocol import HEADER_LENGTH, InferRequest, decode_request, encode_response
from serving.routes.body import declared_length, read_body
from serving.routes.encoding import choose as choose_encoding
from serving.routes.encoding import compress, inflate
from serving.routes.errors import render_error, render_internal_error, render_serving_error
from serving.runtime import Runtime

log = logging.getLogger(__name__)


# A request still waiting after this long starts watching for its client leaving: most
# requests are answered sooner, and a watcher (a task per request) is then never created.
WATCH_AFTER_S = 0.02


class _CancelledOnDisconnect:
    """Cancel the enclosed work when the client disconnects: a queued request is then never
    computed (its batcher entry is cancelled with it), and ``RequestCancelled`` is raised.
    The watch starts once the work has run ``WATCH_AFTER_S``."""

    __slots__ = ("_receive", "_task", "_timer", "_watcher", "_gone")

    def __init__(self, receive) -> None:
        self._receive = receive
        self._watcher: asyncio.Task | None = None
        self._gone = False

    async def __aenter__(self) -> None:
        self._task = asyncio.current_task()
        self._timer = asyncio.get_running_loop().call_later(WATCH_AFTER_S, self._start)

    def _start(self) -> None:
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            await asyncio.sleep(0)  # a receive that answers at once must not starve the loop
        self._gone = True
        self._task.cancel()

    async def __aexit__(self, kind, error, traceback) -> bool:
        self._timer.cancel()
        if self._watcher is not None:
            self._watcher.cancel()
        if kind is asyncio.CancelledError and self._gone:
            self._task.uncancel()
            raise RequestCancelled("client went away") from None
        return False  # anything else (the server stopping included) goes on up


INFER_PATH = re.compile(r"/v2/models/([^/]+)(?:/versions/([^/]+))?/infer")
_HEADER_LENGTH = HEADER_LENGTH.lower().encode("latin-1")  # ASGI header names are lower case


# Bodies above this size are judged for refusal before they are read (uvicorn buffers up to
# 64 KiB of a body before the application asks for it).
EARLY_REFUSAL_BYTES = 64 * 1024


async def handle_infer(rt: Runtime, model_name: str, model_version: str | None, receive,
                       declared: int | None, header_length: str | None,
                       content_encoding: str | None = None, traceparent: str | None = None,
                       tracestate: str | None = None) -> tuple[bytes, dict[str, str]]:
    """Read, decode, batch and encode one HTTP request (``serving.lifecycle``); raises
    ``ServingError`` subclasses."""

    async def read(version: int | None, trace: tracing.RequestTrace) -> InferRequest:
        # Refused before reading: a refusal never waits behind the reading and decoding of
        # its own body, or other requests'. The connection is then closed after the answer:
        # under overload, receiving the unread bodies of refused requests only to discard
        # them took most of the event loop (docs/BENCHMARKS.md); closed, the kernel drops
        # them. A small body came with the headers: it is read and judged with its own rows
        # and timeout below.
        if ((declared is None or declared > EARLY_REFUSAL_BYTES)
                and (loaded := rt.registry.loaded(model_name)) is not None
                and (early := loaded.early_refusal(version)) is not None):
            early.headers["connection"] = "close"
            raise early
        limit = rt.settings.max_request_bytes
        body = await read_body(receive, limit, declared)
        if trace.span is None:
            return _decode(body, content_encoding, limit, header_length)
        with trace.child("decode"):
            return _decode(body, content_encoding, limit, header_length)

    def encode(request: InferRequest, result) -> tuple[bytes, dict[str, str]]:
        return encode_response(model_name, str(result.version), request.id, result.outputs)

    return await serve_infer(rt, model_name, model_version, protocol="http", read=read,
                             encode=encode, guard=lambda: _CancelledOnDisconnect(receive),
                             traceparent=traceparent, tracestate=tracestate)


def _decode(body: bytes, content_encoding: str | None, limit: int, header_length: str | None):
    return decode_request(inflate(body, content_encoding, limit), header_length)


class InferFastPath:
    """ASGI entry point: the infer route here, everything else to ``app``."""

    def __init__(self, app, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime

    @property
    def state(self):
        return self.app.state

    async def __call__(self, scope, receive, send) -> None:
        match = INFER_PATH.fullmatch(scope["path"]) if scope["type"] == "http" else None
        if match is None:
            return await self.app(scope, receive, send)
        if scope["method"] != "POST":
            return await _send(send, *render_error(405, "infer takes POST", {"allow": "POST"}))
        declared = header_length = content_encoding = accept_encoding = None
        traceparent = tracestate = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = declared_length(value)
            elif name == _HEADER_LENGTH:
                header_length = value.decode("latin-1")
            elif name == b"content-encoding":
                content_encoding = value.decode("latin-1")
            elif name == b"accept-encoding":
                accept_encoding = value.decode("latin-1")
            elif name == b"traceparent":
                traceparent = value.decode("latin-1")
            elif name == b"tracestate":
                tracestate = value.decode("latin-1")
        try:
            content, headers = await handle_infer(
                self.runtime, match[1], match[2], receive, declared, header_length,
                content_encoding, traceparent, tracestate)
        except ServingError as error:
            return await _send(send, *render_serving_error(error))
        except (ClientDisconnected, RequestCancelled):
            return  # nobody to answer
        except Exception:  # noqa: BLE001 - one request fails, the server goes on
            log.exception("infer failed", extra={"model": match[1]})
            return await _send(send, *render_internal_error())
        if accept_encoding is not None and (coding := choose_encoding(accept_encoding)):
            content = compress(content, coding)
            headers = {**headers, "content-encoding": coding, "vary": "Accept-Encoding"}
        await _send(send, 200, headers, content)


async def _send(send, status: int, headers: dict[str, str], content: bytes) -> None:
    raw_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    raw_headers.append((b"content-length", str(len(content)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": content})
