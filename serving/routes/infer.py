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
import time

from serving import tracing
from serving.errors import ClientDisconnected, ModelNotFound, RequestCancelled, ServingError
from serving.inference import run_inference
from serving.predlog.records import status_of
from serving.protocol import HEADER_LENGTH, decode_request, encode_response
from serving.routes.body import declared_length, read_body
from serving.routes.deps import parse_version
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


_UNTRACED = tracing.RequestTrace()
# Bodies above this size are judged for refusal before they are read (uvicorn buffers up to
# 64 KiB of a body before the application asks for it).
EARLY_REFUSAL_BYTES = 64 * 1024


async def handle_infer(rt: Runtime, model_name: str, model_version: str | None, receive,
                       declared: int | None, header_length: str | None,
                       content_encoding: str | None = None, traceparent: str | None = None,
                       tracestate: str | None = None) -> tuple[bytes, dict[str, str]]:
    """Decode, batch and encode one request; raises ``ServingError`` subclasses. With
    tracing on, inside an ``infer`` span continuing the caller's ``traceparent``."""
    if not tracing.enabled():
        return await _handle(rt, model_name, model_version, receive, declared, header_length,
                             content_encoding, _UNTRACED)
    with tracing.request_span(model_name, traceparent, tracestate) as trace:
        return await _handle(rt, model_name, model_version, receive, declared, header_length,
                             content_encoding, trace)


def _decode(body: bytes, content_encoding: str | None, limit: int, header_length: str | None):
    return decode_request(inflate(body, content_encoding, limit), header_length)


async def _handle(rt: Runtime, model_name: str, model_version: str | None, receive,
                  declared: int | None, header_length: str | None,
                  content_encoding: str | None, trace: tracing.RequestTrace
                  ) -> tuple[bytes, dict[str, str]]:
    started = time.perf_counter()
    created_at = time.time()
    label = model_name if rt.registry.loaded(model_name) else rt.model_label(model_name)
    series = rt.metrics.series(label)
    in_flight = series.in_flight
    in_flight.inc()
    version = request = result = failure = None
    outcome = "failure"
    try:
        if not label:
            raise ModelNotFound(f"model '{model_name}' is not in the repository")
        version = parse_version(model_version)
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
            request = _decode(body, content_encoding, limit, header_length)
        else:
            with trace.child("decode"):
                request = _decode(body, content_encoding, limit, header_length)
        async with rt.registry.use(model_name) as model, _CancelledOnDisconnect(receive):
            result = await run_inference(model, version, request, rt.cache,
                                         trace if trace.span is not None else None)
        content, headers = encode_response(model_name, str(result.version), request.id,
                                           result.outputs)
        outcome = "success"
    except ServingError as error:
        rt.count_failure(label, error)
        failure = error
        raise
    except ClientDisconnected:
        label = ""  # the client left before sending its request: nothing to log
        raise
    except RequestCancelled as error:  # the client left while its request waited
        outcome, failure = "cancelled", error
        raise
    except asyncio.CancelledError:  # the server gave up on it (shutdown's grace ran out)
        outcome, failure = "cancelled", RequestCancelled("cancelled by the server")
        raise
    except Exception as error:  # a bug, not a refusal: still a failed request to count
        failure = error
        raise
    finally:
        in_flight.dec()
        elapsed = time.perf_counter() - started
        if trace.span is not None:
            _finish_trace(trace, outcome, failure, result)
        if label:  # every outcome is counted and timed (a refusal was counted above)
            series.answered(outcome, elapsed, count=outcome != "failure"
                            or not isinstance(failure, ServingError))
            if outcome != "cancelled":
                _answered(rt, model_name, version, result, outcome == "success", elapsed)
        if rt.predlog is not None and label:
            rt.predlog.record(created_at=created_at, model=model_name,
                              status=status_of(failure), latency_s=elapsed,
                              request=request, result=result, version=version)
    return content, headers


def _finish_trace(trace: tracing.RequestTrace, outcome: str, failure, result) -> None:
    """The request's ``queue`` and ``compute`` spans (from its batch's timings) and outcome."""
    if result is not None:
        stats = result.batch
        if stats.taken_at is not None and stats.queue_s is not None:
            trace.past("queue", stats.taken_at - stats.queue_s, stats.taken_at)
            if stats.compute_s is not None:
                trace.past("compute", stats.taken_at, stats.taken_at + stats.compute_s,
                           **{"aiinfra.batch.rows": stats.batch_rows or 0})
        trace.set(**{"aiinfra.version": str(result.version),
                     "aiinfra.cached_rows": result.cached_rows})
    trace.set(**{"aiinfra.outcome": outcome})
    if failure is not None:
        trace.fail(failure)


def _answered(rt: Runtime, name: str, version: int | None, result, ok: bool,
              elapsed: float) -> None:
    """The statistics extension's success/fail for the version that answered (or would
    have: the one asked for, else the latest loaded)."""
    if result is not None:
        served = result.version
    elif (loaded := rt.registry.loaded(name)) is not None:
        served = version if version in loaded.batchers else loaded.latest
    else:
        return  # not loaded: no version to count against
    rt.registry.statistics.of(name, served).answered(ok, elapsed)


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
