"""``inference.GRPCInferenceService`` and ``grpc.health.v1.Health`` over the runtime.

Every call answers what its HTTP twin answers (``serving.control``, ``serving.lifecycle``):
the same checks, messages and counts; only the status differs in kind. ``ServingError``
statuses map as Triton's front end maps them (``STATUS_CODES``); a refusal carries its retry
hint as trailing metadata: ``retry-after`` (seconds, like the HTTP header) and
``grpc-retry-pushback-ms`` (what gRPC's own retry policy reads).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import grpc
from google.protobuf import json_format
from google.protobuf.message import DecodeError

from serving import control, tracing
from serving.errors import InvalidInput, PayloadTooLarge, ServingError
from serving.lifecycle import serve_infer
from serving.protocol import InferRequest
from serving.rpc import messages as m
from serving.rpc.codec import decode_infer_request, encode_infer_response
from serving.runtime import Runtime

log = logging.getLogger(__name__)

STATUS_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    500: grpc.StatusCode.INTERNAL,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
}
INTERNAL_ERROR = "internal error; see the server log"


def status_of(error: ServingError) -> tuple[grpc.StatusCode, tuple[tuple[str, str], ...]]:
    """The gRPC status of ``error`` and its trailing metadata (the retry hint, if any)."""
    code = STATUS_CODES.get(error.status, grpc.StatusCode.UNKNOWN)
    retry = error.headers.get("Retry-After")
    if retry is None:
        return code, ()
    return code, (("retry-after", str(retry)),
                  ("grpc-retry-pushback-ms", str(int(float(retry) * 1000))))


async def abort(context: grpc.aio.ServicerContext, error: ServingError):
    code, trailers = status_of(error)
    if trailers:
        context.set_trailing_metadata(trailers)
    await context.abort(code, error.message)


def _metadata(context: grpc.aio.ServicerContext, key: str) -> str | None:
    for item in context.invocation_metadata() or ():
        if item.key == key:
            return item.value if isinstance(item.value, str) else None
    return None


def _version(text: str) -> str | None:
    return text or None  # proto3: an empty string is "not given", the latest version


def _unary(call: Callable) -> Callable:
    """A unary handler whose ``ServingError`` leaves as its gRPC status, and whose bug leaves
    as INTERNAL (logged, never sent)."""

    async def handler(self, request, context):
        try:
            return await call(self, request, context)
        except ServingError as error:
            await abort(context, error)
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception:  # noqa: BLE001 - one call fails, the server goes on
            log.exception("gRPC call failed", extra={"method": call.__name__})
            await context.abort(grpc.StatusCode.INTERNAL, INTERNAL_ERROR)

    handler.__name__ = call.__name__
    return handler


class InferenceService:
    """The Open Inference Protocol's gRPC methods (and Triton's configuration, statistics and
    repository calls) over one runtime."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    # -- health and metadata ---------------------------------------------------------------
    @_unary
    async def ServerLive(self, request, context):
        return m.ServerLiveResponse(live=True)

    @_unary
    async def ServerReady(self, request, context):
        reason = self.rt.not_ready_reason
        if reason is not None:  # as the HTTP body says why, so do these trailers
            context.set_trailing_metadata(
                (("aiinfra-not-ready-reason", reason.encode("ascii", "replace").decode()),))
        return m.ServerReadyResponse(ready=reason is None)

    @_unary
    async def ModelReady(self, request, context):
        return m.ModelReadyResponse(
            ready=control.model_ready(self.rt, request.name, _version(request.version)))

    @_unary
    async def ServerMetadata(self, request, context):
        return json_format.ParseDict(control.server_metadata(self.rt),
                                     m.ServerMetadataResponse())

    @_unary
    async def ModelMetadata(self, request, context):
        return json_format.ParseDict(
            control.model_metadata(self.rt, request.name, _version(request.version)),
            m.ModelMetadataResponse())

    @_unary
    async def ModelConfig(self, request, context):
        config = control.model_config(self.rt, request.name, _version(request.version))
        return json_format.ParseDict({"config": config}, m.ModelConfigResponse())

    @_unary
    async def ModelStatistics(self, request, context):
        stats = control.statistics(self.rt, request.name or None, _version(request.version))
        return json_format.ParseDict(stats, m.ModelStatisticsResponse())

    # -- repository control (the bearer token in the `authorization` metadata) -------------
    @_unary
    async def RepositoryIndex(self, request, context):
        control.require_control(self.rt, _metadata(context, "authorization"))
        rows = self.rt.registry.index(ready_only=request.ready)
        return json_format.ParseDict({"models": rows}, m.RepositoryIndexResponse())

    @_unary
    async def RepositoryModelLoad(self, request, context):
        control.require_control(self.rt, _metadata(context, "authorization"))
        if request.parameters:
            raise InvalidInput("load parameters (a config override or files) are not "
                               "supported: change the repository and load again")
        await self.rt.registry.load(request.model_name)
        return m.RepositoryModelLoadResponse()

    @_unary
    async def RepositoryModelUnload(self, request, context):
        control.require_control(self.rt, _metadata(context, "authorization"))
        await self.rt.registry.unload(request.model_name)
        return m.RepositoryModelUnloadResponse()

    # -- inference ---------------------------------------------------------------------------
    @_unary
    async def ModelInfer(self, raw: bytes, context):
        """``raw`` is the serialized request: its size is judged with the HTTP limit's
        message (``_infer``), after it is parsed."""
        try:
            message = m.ModelInferRequest.FromString(raw)
        except DecodeError:
            raise InvalidInput("request is not a valid ModelInferRequest") from None
        return await self._infer(message, context, len(raw))

    async def ModelStreamInfer(self, requests: AsyncIterator, context) -> AsyncIterator:
        """Each request of the stream is served as it arrives, concurrently (so that one
        stream's requests batch together); answers leave as they are ready, in any order, each
        with its request's ``id``. A failed request answers ``error_message`` and the stream
        goes on."""
        answers: asyncio.Queue = asyncio.Queue()
        pending: set[asyncio.Task] = set()
        done = object()

        async def one(message) -> None:
            try:
                response = await self._infer(message, context, message.ByteSize())
                await answers.put(m.ModelStreamInferResponse(infer_response=response))
            except ServingError as error:
                await answers.put(m.ModelStreamInferResponse(
                    error_message=error.message, infer_response=m.ModelInferResponse(
                        model_name=message.model_name, model_version=message.model_version,
                        id=message.id)))
            except Exception:  # noqa: BLE001
                log.exception("stream infer failed", extra={"model": message.model_name})
                await answers.put(m.ModelStreamInferResponse(
                    error_message=INTERNAL_ERROR,
                    infer_response=m.ModelInferResponse(id=message.id)))

        async def read() -> None:
            async for message in requests:
                task = asyncio.create_task(one(message))
                pending.add(task)
                task.add_done_callback(pending.discard)
            while pending:
                await asyncio.wait(set(pending))
            await answers.put(done)

        reader = asyncio.create_task(read())
        try:
            while (answer := await answers.get()) is not done:
                yield answer
            await reader
        finally:
            reader.cancel()
            for task in list(pending):
                task.cancel()

    async def _infer(self, message, context, size: int):
        rt = self.rt
        name = message.model_name
        remaining = context.time_remaining()
        deadline_us = int(remaining * 1e6) if remaining is not None else None

        async def read(version: int | None, trace: tracing.RequestTrace) -> InferRequest:
            limit = rt.settings.max_request_bytes
            if size > limit:
                raise PayloadTooLarge(f"request of {size} bytes is over the {limit}-byte limit "
                                      "(AIINFRA_MAX_REQUEST_BYTES)")
            if trace.span is None:
                return decode_infer_request(message, deadline_us)
            with trace.child("decode"):
                return decode_infer_request(message, deadline_us)

        def encode(request: InferRequest, result):
            return encode_infer_response(name, str(result.version), request.id, result.outputs)

        traceparent = tracestate = None
        if tracing.enabled():
            traceparent = _metadata(context, "traceparent")
            tracestate = _metadata(context, "tracestate")
        return await serve_infer(rt, name, _version(message.model_version), protocol="grpc",
                                 read=read, encode=encode, traceparent=traceparent,
                                 tracestate=tracestate)


class HealthService:
    """``grpc.health.v1.Health``: the server (service ``""``) and the inference service are
    SERVING while ``/v2/health/ready`` would answer 200; any other service is NOT_FOUND."""

    SERVICES = ("", m.SERVICE)
    WATCH_INTERVAL_S = 1.0

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    def _status(self) -> int:
        serving = m.HealthCheckResponse.ServingStatus
        return serving.Value("SERVING" if self.rt.is_ready else "NOT_SERVING")

    async def Check(self, request, context):
        if request.service not in self.SERVICES:
            await context.abort(grpc.StatusCode.NOT_FOUND,
                                f"unknown service {request.service!r}")
        return m.HealthCheckResponse(status=self._status())

    async def Watch(self, request, context) -> AsyncIterator:
        """The status now, then each change (polled), until the client leaves or the server
        stops (its last answer then is NOT_SERVING)."""
        if request.service not in self.SERVICES:
            yield m.HealthCheckResponse(
                status=m.HealthCheckResponse.ServingStatus.Value("SERVICE_UNKNOWN"))
            return
        last = None
        while True:
            status = self._status()
            if status != last:
                yield m.HealthCheckResponse(status=status)
                last = status
            if self.rt.draining and status == m.HealthCheckResponse.ServingStatus.Value(
                    "NOT_SERVING"):
                return
            await asyncio.sleep(self.WATCH_INTERVAL_S)


def handlers(runtime: Runtime) -> tuple[grpc.GenericRpcHandler, ...]:
    """The two services' handlers, built from the descriptors (``serving.rpc.messages``)."""
    return (_generic(m.SERVICE, InferenceService(runtime), raw={"ModelInfer"}),
            _generic(m.HEALTH_SERVICE, HealthService(runtime)))


def _generic(service: str, implementation, raw: set[str] = frozenset()
             ) -> grpc.GenericRpcHandler:
    table = {}
    for name, (request, response, client_streams, server_streams) in m.methods(service).items():
        function = getattr(implementation, name)
        deserialize = None if name in raw else request.FromString
        serialize = response.SerializeToString
        if client_streams and server_streams:
            make = grpc.stream_stream_rpc_method_handler
        elif server_streams:
            make = grpc.unary_stream_rpc_method_handler
        elif client_streams:
            make = grpc.stream_unary_rpc_method_handler
        else:
            make = grpc.unary_unary_rpc_method_handler
        table[name] = make(function, request_deserializer=deserialize,
                           response_serializer=serialize)
    return grpc.method_handlers_generic_handler(service, table)
