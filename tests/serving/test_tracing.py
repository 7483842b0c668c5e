"""OpenTelemetry tracing of the infer path: off by default, spans for decode, queue, batch
and compute, the caller's ``traceparent`` continued, trace ids in the logs, and a broken
configuration that only warns."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from serving import tracing
from serving.logs import log_config

sdk = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")

INFER = "/v2/models/scale/infer"
BODY = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{CALLER_TRACE}-00f067aa0ba902b7-01"


@pytest.fixture
def spans(monkeypatch):
    """Tracing on, spans kept in memory."""
    exporter = sdk.InMemorySpanExporter()
    real = tracing.configure
    monkeypatch.setattr(tracing, "configure",
                        lambda enabled, exporter_=exporter: real(enabled, exporter=exporter_))
    yield exporter
    tracing.shutdown()


def by_name(exporter) -> dict[str, list]:
    found: dict[str, list] = {}
    for span in exporter.get_finished_spans():
        found.setdefault(span.name, []).append(span)
    return found


def test_tracing_is_off_by_default(scale_repository: Path, make_client) -> None:
    client = make_client(scale_repository)
    assert client.post(INFER, json=BODY).status_code == 200
    assert tracing.enabled() is False


def test_an_infer_request_is_traced_under_its_callers_trace(scale_repository: Path,
                                                            make_client, spans) -> None:
    client = make_client(scale_repository, tracing=True)
    response = client.post(INFER, json=BODY, headers={"traceparent": TRACEPARENT})
    assert response.status_code == 200
    found = by_name(spans)
    (infer,) = found["infer"]
    assert format(infer.context.trace_id, "032x") == CALLER_TRACE
    assert format(infer.parent.span_id, "016x") == "00f067aa0ba902b7"
    assert infer.attributes["aiinfra.model"] == "scale"
    assert infer.attributes["aiinfra.outcome"] == "success"
    assert infer.attributes["aiinfra.version"] == "1"
    for name in ("decode", "queue", "compute"):
        (child,) = found[name]
        assert child.parent.span_id == infer.context.span_id, name
        assert child.context.trace_id == infer.context.trace_id
        assert child.start_time <= child.end_time
    (queue,), (compute,) = found["queue"], found["compute"]
    assert queue.end_time == compute.start_time  # taken, then computed
    (batch,) = found["batch"]
    assert [link.context.span_id for link in batch.links] == [infer.context.span_id]
    assert batch.attributes["aiinfra.batch.rows"] == 1


def test_probes_and_metrics_are_not_traced(scale_repository: Path, make_client, spans) -> None:
    client = make_client(scale_repository, tracing=True)
    for path in ("/v2/health/ready", "/v2/health/live", "/metrics", "/v2/models/scale"):
        assert client.get(path).status_code == 200
    assert spans.get_finished_spans() == ()


def test_a_refused_request_has_an_error_span(scale_repository: Path, make_client,
                                             spans) -> None:
    client = make_client(scale_repository, tracing=True)
    bad = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]}
    assert client.post(INFER, json=bad).status_code == 400
    (infer,) = by_name(spans)["infer"]
    assert infer.attributes["aiinfra.outcome"] == "failure"
    assert infer.status.status_code.name == "ERROR"
    assert "expects [-1, 4]" in infer.status.description


def test_a_bad_configuration_warns_and_serves(scale_repository: Path, make_client,
                                              monkeypatch, caplog) -> None:
    monkeypatch.setattr("opentelemetry.sdk.trace.TracerProvider.add_span_processor",
                        lambda *_: (_ for _ in ()).throw(RuntimeError("bad exporter")))
    with caplog.at_level(logging.WARNING, logger="serving.tracing"):
        client = make_client(scale_repository, tracing=True)
        assert client.post(INFER, json=BODY).status_code == 200
    assert tracing.enabled() is False
    assert any("tracing is off" in r.getMessage() for r in caplog.records)


def test_json_logs_carry_the_trace_id(spans) -> None:
    tracing.configure(True)
    handler_filters = log_config()["handlers"]["stderr"]["filters"]
    assert "trace_ids" in handler_filters
    record = logging.LogRecord("serving.x", logging.INFO, __file__, 1, "m", (), None)
    with tracing.request_span("scale", TRACEPARENT, None):
        assert tracing.TraceIds().filter(record)
    assert record.trace_id == CALLER_TRACE
    assert len(record.span_id) == 16
