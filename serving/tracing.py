"""OpenTelemetry tracing of the infer path, off unless ``AIINFRA_TRACING=true``.

Exporters, endpoint, headers, sampler and service name come from the standard ``OTEL_*``
variables (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_TRACES_SAMPLER``, ``OTEL_SERVICE_NAME``, …),
read by the SDK itself. A W3C ``traceparent`` on a request makes its spans children of the
caller's. Each request gets an ``infer`` span (server kind) with ``decode``, ``queue`` and
``compute`` children; each executed batch gets a ``batch`` span linked to the requests it
carried. Probes and ``/metrics`` are never traced. A configuration that fails is logged as a
warning and tracing stays off: it never stops the server.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)

_tracer: Any = None  # an opentelemetry Tracer once configured, else None (tracing off)
_provider: Any = None


def configure(enabled: bool, *, exporter: Any = None) -> bool:
    """Turn tracing on (``exporter``: a span exporter, else OTLP over HTTP from ``OTEL_*``).
    Returns whether it is on."""
    global _tracer, _provider  # noqa: PLW0603 - one tracer per process
    if not enabled:
        return False
    shutdown()  # a runtime started again replaces its provider, never stacks a second one
    try:
        from opentelemetry.sdk.resources import OTELResourceDetector, Resource  # noqa: PLC0415
        from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
        from opentelemetry.sdk.trace.export import (  # noqa: PLC0415
            BatchSpanProcessor,
            SimpleSpanProcessor,
        )

        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
                OTLPSpanExporter,
            )

            exporter, processor = OTLPSpanExporter(), BatchSpanProcessor
        else:
            processor = SimpleSpanProcessor
        # Our default name, then OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES over it
        # (Resource.create lets explicit attributes win over the environment).
        resource = Resource.create({"service.name": "aiinfra"}).merge(
            OTELResourceDetector().detect())
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(processor(exporter))
        _provider = provider
        _tracer = provider.get_tracer("aiinfra.serving")
    except Exception as exc:  # noqa: BLE001 - a bad tracing set-up must not stop serving
        log.warning("tracing is off: its configuration failed", extra={"error": repr(exc)})
        _tracer = _provider = None
        return False
    log.info("tracing on")
    return True


def shutdown() -> None:
    global _tracer, _provider  # noqa: PLW0603
    if _provider is not None:
        try:
            _provider.shutdown()
        except Exception:  # noqa: BLE001 - flushing spans must not fail a shutdown
            log.warning("tracing shutdown failed", exc_info=True)
    _tracer = _provider = None


def enabled() -> bool:
    return _tracer is not None


def _parent(traceparent: str | None, tracestate: str | None):
    from opentelemetry.trace.propagation.tracecontext import (  # noqa: PLC0415
        TraceContextTextMapPropagator,
    )

    carrier = {k: v for k, v in (("traceparent", traceparent), ("tracestate", tracestate)) if v}
    return TraceContextTextMapPropagator().extract(carrier) if carrier else None


class RequestTrace:
    """One request's spans; every method is a no-op when tracing is off."""

    __slots__ = ("span", "context")

    def __init__(self, span: Any = None) -> None:
        self.span = span
        self.context = span.get_span_context() if span is not None else None

    @contextmanager
    def child(self, name: str) -> Iterator[None]:
        if self.span is None:
            yield
            return
        from opentelemetry import trace  # noqa: PLC0415

        with _tracer.start_as_current_span(name, context=trace.set_span_in_context(self.span)):
            yield

    def past(self, name: str, start_s: float, end_s: float, **attributes: Any) -> None:
        """A child span for something already over (times from ``time.time()``)."""
        if self.span is None:
            return
        from opentelemetry import trace  # noqa: PLC0415

        span = _tracer.start_span(name, context=trace.set_span_in_context(self.span),
                                  start_time=int(start_s * 1e9), attributes=attributes)
        span.end(end_time=int(end_s * 1e9))

    def set(self, **attributes: Any) -> None:
        if self.span is not None:
            self.span.set_attributes({k: v for k, v in attributes.items() if v is not None})

    def fail(self, error: BaseException) -> None:
        if self.span is not None:
            from opentelemetry.trace import Status, StatusCode  # noqa: PLC0415

            self.span.set_status(Status(StatusCode.ERROR, str(error)))


@contextmanager
def request_span(model: str, traceparent: str | None, tracestate: str | None
                 ) -> Iterator[RequestTrace]:
    """The ``infer`` span of one request, a child of the caller's ``traceparent``."""
    if _tracer is None:
        yield RequestTrace()
        return
    from opentelemetry.trace import SpanKind  # noqa: PLC0415

    with _tracer.start_as_current_span(
            "infer", context=_parent(traceparent, tracestate), kind=SpanKind.SERVER,
            attributes={"aiinfra.model": model}, record_exception=False,
            set_status_on_exception=False) as span:
        yield RequestTrace(span)


def batch_span(model: str, contexts: list[Any], rows: int, start_s: float,
               end_s: float) -> None:
    """The ``batch`` span of one executed batch, linked to the requests it carried."""
    if _tracer is None or not any(c is not None for c in contexts):
        return
    from opentelemetry.trace import Link  # noqa: PLC0415

    span = _tracer.start_span(
        "batch", start_time=int(start_s * 1e9),
        links=[Link(c) for c in contexts if c is not None],
        attributes={"aiinfra.model": model, "aiinfra.batch.rows": rows,
                    "aiinfra.batch.requests": len(contexts)})
    span.end(end_time=int(end_s * 1e9))


class TraceIds(logging.Filter):
    """Adds ``trace_id`` and ``span_id`` of the current span to log records (JSON logs
    carry them as fields)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _tracer is not None:
            from opentelemetry import trace  # noqa: PLC0415

            context = trace.get_current_span().get_span_context()
            if context.is_valid:
                record.trace_id = format(context.trace_id, "032x")
                record.span_id = format(context.span_id, "016x")
        return True
