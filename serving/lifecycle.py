"""One inference request's life, whatever its transport (HTTP or gRPC): counted, timed,
traced and logged the same way, through the same admission, batcher and cache.

A transport hands ``serve_infer`` three things: ``read`` (get the request: read and decode
the body, refusing early where it can), ``encode`` (the answer in its wire format) and, when
it needs one, ``guard`` (an async context that turns a client leaving into
``RequestCancelled``; gRPC needs none: grpcio cancels the handler itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from serving import tracing
from serving.errors import ClientDisconnected, ModelNotFound, RequestCancelled, ServingError
from serving.inference import InferenceResult, run_inference
from serving.predlog.records import status_of
from serving.protocol import InferRequest
from serving.repository.store import parse_version
from serving.runtime import Runtime

T = TypeVar("T")
Read = Callable[[int | None, tracing.RequestTrace], Awaitable[InferRequest]]
Encode = Callable[[InferRequest, InferenceResult], T]

_UNTRACED = tracing.RequestTrace()


async def serve_infer(rt: Runtime, model_name: str, model_version: str | None, *,
                      protocol: str, read: Read, encode: Encode[T],
                      guard: Callable[[], contextlib.AbstractAsyncContextManager] | None = None,
                      traceparent: str | None = None, tracestate: str | None = None) -> T:
    """Read, batch and encode one request; raises ``ServingError`` subclasses (counted),
    ``RequestCancelled`` and ``ClientDisconnected``. With tracing on, inside an ``infer``
    span continuing the caller's ``traceparent``."""
    if not tracing.enabled():
        return await _serve(rt, model_name, model_version, protocol, read, encode, guard,
                            _UNTRACED)
    with tracing.request_span(model_name, traceparent, tracestate) as trace:
        trace.set(**{"aiinfra.protocol": protocol})
        return await _serve(rt, model_name, model_version, protocol, read, encode, guard,
                            trace)


async def _serve(rt: Runtime, model_name: str, model_version: str | None, protocol: str,
                 read: Read, encode: Encode[T], guard, trace: tracing.RequestTrace) -> T:
    started = time.perf_counter()
    arrived = time.monotonic()  # what the request's deadline counts from
    created_at = time.time()
    label = model_name if rt.registry.loaded(model_name) else rt.model_label(model_name)
    series = rt.metrics.series(label, protocol)
    in_flight = series.in_flight
    in_flight.inc()
    version = request = result = failure = None
    outcome = "failure"
    try:
        if not label:
            raise ModelNotFound(f"model '{model_name}' is not in the repository")
        version = parse_version(model_version)
        request = await read(version, trace)
        async with rt.registry.use(model_name) as model:
            traced = trace if trace.span is not None else None
            if guard is None:
                result = await run_inference(model, version, request, rt.cache, traced,
                                             arrived=arrived)
            else:
                async with guard():
                    result = await run_inference(model, version, request, rt.cache, traced,
                                                 arrived=arrived)
        response = encode(request, result)
        outcome = "success"
    except ServingError as error:
        rt.count_failure(label, error, protocol)
        failure = error
        raise
    except ClientDisconnected:
        label = ""  # the client left before sending its request: nothing to log
        raise
    except RequestCancelled as error:  # the client left while its request waited
        outcome, failure = "cancelled", error
        raise
    except asyncio.CancelledError:  # the server gave up on it, or (gRPC) the client did
        outcome, failure = "cancelled", RequestCancelled("cancelled")
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
    return response


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
