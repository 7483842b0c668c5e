"""The gRPC front end in process: every call answers what its HTTP twin answers (the same
data, the same error messages), counted with protocol="grpc"; cancellation; health; the
descriptors are current. The real client, tritonclient.grpc: test_tritonclient_grpc.py."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest

from bench.process import free_port
from serving.app import create_app
from serving.metrics import ServingMetrics
from serving.rpc import messages as m
from serving.settings import Settings
from tests.support.models import SCALE_CONFIG, write_model
from tests.support.rpc import Client, infer_request, output
from tests.support.servers import serving_in_thread

WAIT_S = 20
X = np.arange(8, dtype=np.float32).reshape(2, 4)


@pytest.fixture
def live(tmp_path: Path):
    """(gRPC client, HTTP base URL, app) of a started server; the model's forward waits for
    ``app.gate`` once ``app.gated`` is set."""
    root = tmp_path / "repository"
    write_model(root, "scale", SCALE_CONFIG)
    port, grpc_port = free_port(), free_port()
    settings = Settings(model_repository=root, engine_cache_dir=tmp_path / "e",
                        log_format="text", gc_freeze=False, port=port, grpc=True,
                        grpc_port=grpc_port, max_request_bytes=64 * 1024)
    app = create_app(settings, ServingMetrics())
    with serving_in_thread(app, port, WAIT_S):
        runtime = app.state.runtime
        backend = runtime.registry.loaded("scale").batcher(None)._instances[0]
        app.gate, app.entered, app.computed, app.gated = (threading.Event(), threading.Event(),
                                                          [], False)
        forward = backend.forward

        def gated(arrays):
            app.computed.append(arrays[0].copy())
            if app.gated:
                app.entered.set()
                assert app.gate.wait(WAIT_S)
            return forward(arrays)

        backend.forward = gated
        client = Client(f"127.0.0.1:{grpc_port}")
        yield client, f"http://127.0.0.1:{port}", app
        client.close()
        app.gate.set()


def _sample(app, name: str, **labels) -> float:
    return app.state.runtime.metrics.registry.get_sample_value(name, labels) or 0.0


def _error(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def test_health_and_metadata_answer_what_http_answers(live) -> None:
    client, url, _ = live
    assert client.ServerLive().live is True
    assert client.ServerReady().ready is True
    metadata = client.ServerMetadata()
    http = httpx.get(f"{url}/v2").json()
    assert (metadata.name, metadata.version, list(metadata.extensions)) == (
        http["name"], http["version"], http["extensions"])
    model = client.ModelMetadata(client.request("ModelMetadata", name="scale"))
    http = httpx.get(f"{url}/v2/models/scale").json()
    assert list(model.versions) == http["versions"] == ["1"]
    assert model.platform == http["platform"]
    assert [(t.name, t.datatype, list(t.shape)) for t in model.inputs] == [
        (t["name"], t["datatype"], t["shape"]) for t in http["inputs"]]
    assert client.ModelReady(client.request("ModelReady", name="scale")).ready is True
    assert client.ModelReady(client.request("ModelReady", name="scale", version="7")
                             ).ready is False
    error = _error(lambda: client.ModelReady(client.request("ModelReady", name="nope")))
    assert error.code() == grpc.StatusCode.NOT_FOUND


def test_infer_raw_and_typed_contents(live) -> None:
    client, _, app = live
    response = client.ModelInfer(infer_request("scale", {"x": X}, id="r-1"))
    assert (response.model_name, response.model_version, response.id) == ("scale", "1", "r-1")
    np.testing.assert_array_equal(output(response, "y"), X * 2)
    np.testing.assert_array_equal(output(response, "total"), X.sum(axis=1, keepdims=True))
    typed = m.ModelInferRequest(model_name="scale")
    tensor = typed.inputs.add(name="x", datatype="FP32")
    tensor.shape.extend([2, 4])
    tensor.contents.fp32_contents.extend(X.reshape(-1).tolist())
    typed.outputs.add(name="total")
    response = client.ModelInfer(typed)
    assert [o.name for o in response.outputs] == ["total"]
    np.testing.assert_array_equal(output(response, "total"), X.sum(axis=1, keepdims=True))
    assert _sample(app, "aiinfra_inference_requests_total", model="scale",
                   outcome="success", protocol="grpc") == 2
    assert _sample(app, "aiinfra_request_duration_seconds_count", model="scale",
                   outcome="success", protocol="grpc") == 2
    assert _sample(app, "aiinfra_inference_requests_total", model="scale",
                   outcome="success", protocol="http") == 0


def _http_json(x: np.ndarray, name: str = "x", datatype: str = "FP32", **extra) -> dict:
    return {"inputs": [{"name": name, "datatype": datatype, "shape": list(x.shape),
                        "data": x.reshape(-1).tolist()}], **extra}


# (gRPC request, equivalent HTTP path and JSON body, gRPC status, HTTP status)
BAD = {
    "wrong shape": (infer_request("scale", {"x": np.ones((2, 3), np.float32)}),
                    ("scale", _http_json(np.ones((2, 3), np.float32))),
                    grpc.StatusCode.INVALID_ARGUMENT, 400),
    "wrong datatype": (infer_request("scale", {"x": np.ones((2, 4), np.int32)}, "INT32"),
                       ("scale", _http_json(np.ones((2, 4), np.int32), datatype="INT32")),
                       grpc.StatusCode.INVALID_ARGUMENT, 400),
    "unknown model": (infer_request("nope", {"x": X}), ("nope", _http_json(X)),
                      grpc.StatusCode.NOT_FOUND, 404),
    "unknown version": (infer_request("scale", {"x": X}, model_version="9"),
                        ("scale/versions/9", _http_json(X)), grpc.StatusCode.NOT_FOUND, 404),
    "unknown input": (infer_request("scale", {"z": X}), ("scale", _http_json(X, name="z")),
                      grpc.StatusCode.INVALID_ARGUMENT, 400),
    "unknown output": (infer_request("scale", {"x": X}, outputs=[
        m.ModelInferRequest.InferRequestedOutputTensor(name="w")]),
        ("scale", _http_json(X, outputs=[{"name": "w"}])),
        grpc.StatusCode.INVALID_ARGUMENT, 400),
    "over the size limit": (infer_request("scale", {"x": np.ones((8, 4), np.float32)},
                                          id="p" * 70_000),
                            ("scale", _http_json(np.ones((8, 4), np.float32), id="p" * 70_000)),
                            grpc.StatusCode.RESOURCE_EXHAUSTED, 413),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_gets_the_matching_status_and_the_http_message(live, case: str) -> None:
    client, url, _ = live
    request, (path, body), code, status = BAD[case]
    error = _error(lambda: client.ModelInfer(request))
    http = httpx.post(f"{url}/v2/models/{path}/infer", json=body)
    assert (error.code(), http.status_code) == (code, status)
    if case == "over the size limit":  # HTTP reads the length first; gRPC has the message
        assert "limit (AIINFRA_MAX_REQUEST_BYTES)" in error.details()
        assert "limit (AIINFRA_MAX_REQUEST_BYTES)" in http.json()["error"]
    else:
        assert error.details() == http.json()["error"]
    assert client.ModelInfer(infer_request("scale", {"x": X})).outputs  # still serving


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda r: r.raw_input_contents.__setitem__(0, b"\0" * 12),
     "input 'x': 12 bytes of raw_input_contents but shape [2, 4] of FP32 needs 32"),
    (lambda r: r.inputs[0].contents.fp32_contents.extend([1.0] * 8),
     "input 'x' has both typed contents and raw_input_contents: send one or the other"),
    (lambda r: r.raw_input_contents.append(b""),
     "raw_input_contents holds 2 tensors but the request has 1 inputs: send one per input, "
     "in input order"),
    (lambda r: r.parameters["priority"].MergeFrom(m.InferParameter(uint64_param=3)),
     "parameter 'priority' is not supported: every request is queued in arrival order"),
    (lambda r: r.parameters["timeout"].MergeFrom(m.InferParameter(string_param="soon")),
     "parameter 'timeout' must be a non-negative integer (microseconds)"),
])
def test_raw_and_typed_contents_are_checked(live, mutate, message: str) -> None:
    client, _, app = live
    request = infer_request("scale", {"x": X})
    mutate(request)
    error = _error(lambda: client.ModelInfer(request))
    assert (error.code(), error.details()) == (grpc.StatusCode.INVALID_ARGUMENT, message)
    assert app.computed == []  # refused before the batcher


def test_typed_contents_of_the_wrong_field_or_count(live) -> None:
    client, _, _ = live
    request = m.ModelInferRequest(model_name="scale")
    tensor = request.inputs.add(name="x", datatype="FP32")
    tensor.shape.extend([2, 4])
    tensor.contents.int_contents.extend([1] * 8)
    error = _error(lambda: client.ModelInfer(request))
    assert error.details() == ("input 'x' is FP32, whose values go in 'fp32_contents', but the "
                               "request fills 'int_contents'")
    tensor.contents.Clear()
    tensor.contents.fp32_contents.extend([1.0] * 7)
    assert _error(lambda: client.ModelInfer(request)).details() == (
        "input 'x': 7 values in 'fp32_contents' but shape [2, 4] needs 8")


def test_a_full_queue_is_unavailable_with_a_retry_hint(live) -> None:
    client, _, app = live
    app.gated = True
    runtime = app.state.runtime
    stub = client.stub("ModelInfer")
    first = stub.future(infer_request("scale", {"x": X[:1]}))
    assert app.entered.wait(WAIT_S)
    queued = [stub.future(infer_request("scale", {"x": X[:1]}))
              for _ in range(SCALE_CONFIG["max_queue_size"])]
    deadline = time.monotonic() + WAIT_S
    while runtime.registry.loaded("scale").batcher(None)._queued_rows < len(queued):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    error = _error(lambda: client.ModelInfer(infer_request("scale", {"x": X[:1]})))
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    trailers = dict(error.trailing_metadata())
    assert int(trailers["retry-after"]) >= 1
    assert int(trailers["grpc-retry-pushback-ms"]) == 1000 * int(trailers["retry-after"])
    app.gate.set()
    assert first.result(WAIT_S).outputs
    assert all(f.result(WAIT_S).outputs for f in queued)


def test_a_client_that_cancels_is_counted_cancelled_and_never_computed(live) -> None:
    client, _, app = live
    app.gated = True
    stub = client.stub("ModelInfer")
    first = stub.future(infer_request("scale", {"x": X[:1]}))
    assert app.entered.wait(WAIT_S)  # the only instance is busy
    gone = stub.future(infer_request("scale", {"x": np.full((1, 4), 7, np.float32)}))
    deadline = time.monotonic() + WAIT_S
    while _sample(app, "aiinfra_inflight_requests", model="scale") < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    gone.cancel()
    while _sample(app, "aiinfra_inference_requests_total", model="scale",
                  outcome="cancelled", protocol="grpc") < 1:
        assert time.monotonic() < deadline, "the server never saw the cancel"
        time.sleep(0.01)
    app.gate.set()
    assert first.result(WAIT_S).outputs
    assert not any((a == 7).any() for a in app.computed)  # never computed


def test_a_deadline_bounds_the_wait_in_the_queue(live) -> None:
    client, _, app = live
    app.gated = True
    stub = client.stub("ModelInfer")
    first = stub.future(infer_request("scale", {"x": X[:1]}))
    assert app.entered.wait(WAIT_S)
    error = _error(lambda: stub(infer_request("scale", {"x": np.full((1, 4), 7, np.float32)}),
                                timeout=0.3))
    assert error.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE)
    app.gate.set()
    assert first.result(WAIT_S).outputs
    assert not any((a == 7).any() for a in app.computed)


def test_config_and_statistics_match_the_http_extensions(live) -> None:
    from google.protobuf import json_format  # noqa: PLC0415

    client, url, _ = live
    client.ModelInfer(infer_request("scale", {"x": X}))
    config = client.ModelConfig(client.request("ModelConfig", name="scale")).config
    http_config = httpx.get(f"{url}/v2/models/scale/config").json()
    assert config == json_format.ParseDict(http_config, type(config)())
    assert (config.max_batch_size, config.dynamic_batching.max_queue_delay_microseconds) == (
        8, 5000)
    stats = client.ModelStatistics(client.request("ModelStatistics", name="scale"))
    http = httpx.get(f"{url}/v2/models/scale/stats").json()["model_stats"]
    assert [(s.name, s.version, s.inference_count, s.inference_stats.success.count)
            for s in stats.model_stats] == [
        (s["name"], s["version"], s["inference_count"], s["inference_stats"]["success"]["count"])
        for s in http] == [("scale", "1", 2, 1)]
    every = client.ModelStatistics(client.request("ModelStatistics"))
    assert [s.name for s in every.model_stats] == ["scale"]
    error = _error(lambda: client.ModelConfig(client.request("ModelConfig", name="nope")))
    assert error.code() == grpc.StatusCode.NOT_FOUND


def test_repository_calls_follow_the_http_rule(live) -> None:
    client, _, _ = live
    error = _error(lambda: client.RepositoryIndex(client.request("RepositoryIndex")))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "repository control is disabled" in error.details()


def test_stream_infer_answers_every_request_with_its_id(live) -> None:
    client, _, _ = live
    requests = [infer_request("scale", {"x": np.full((1, 4), i, np.float32)}, id=f"s{i}")
                for i in range(5)]
    requests.append(infer_request("nope", {"x": X}, id="bad"))
    answers = list(client.ModelStreamInfer(iter(requests), timeout=WAIT_S))
    by_id = {a.infer_response.id: a for a in answers}
    assert sorted(by_id) == ["bad", "s0", "s1", "s2", "s3", "s4"]
    assert by_id["bad"].error_message == "model 'nope' is not in the repository"
    for i in range(5):
        np.testing.assert_array_equal(output(by_id[f"s{i}"].infer_response, "y"),
                                      np.full((1, 4), 2 * i, np.float32))


def test_health_service(live) -> None:
    client, _, app = live
    check = client.Check(client.request("Check"))
    assert check.status == m.HealthCheckResponse.ServingStatus.Value("SERVING")
    named = client.Check(client.request("Check", service=m.SERVICE))
    assert named.status == check.status
    error = _error(lambda: client.Check(client.request("Check", service="other")))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    watch = client.Watch(client.request("Watch"), timeout=WAIT_S)
    assert next(watch).status == check.status
    app.state.runtime.draining = True  # readiness off: the probe says so
    assert client.Check(client.request("Check")).status == (
        m.HealthCheckResponse.ServingStatus.Value("NOT_SERVING"))
    assert next(watch).status == m.HealthCheckResponse.ServingStatus.Value("NOT_SERVING")
    # the readiness call gives the reason too
    call = client.stub("ServerReady").with_call(m.message("inference.ServerReadyRequest")())
    assert call[0].ready is False
    assert dict(call[1].trailing_metadata())["aiinfra-not-ready-reason"] == (
        "draining: shutting down")


def test_a_taken_port_fails_the_start_loudly(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient  # noqa: PLC0415

    root = tmp_path / "repository"
    write_model(root, "scale", SCALE_CONFIG)
    import socket  # noqa: PLC0415

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = Settings(model_repository=root, engine_cache_dir=tmp_path / "e",
                            log_format="text", gc_freeze=False, grpc=True,
                            grpc_port=taken.getsockname()[1])
        with pytest.raises(RuntimeError, match="gRPC cannot listen on 127.0.0.1:"), \
                TestClient(create_app(settings, ServingMetrics())):
            pass


def test_the_committed_descriptors_are_compiled_from_the_protos(tmp_path: Path) -> None:
    """``make protos`` output is committed: compiled again, it must be byte for byte the same."""
    pytest.importorskip("grpc_tools")
    here = Path(m.__file__).parent
    out = tmp_path / "descriptors.binpb"
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{here}",
                    f"--descriptor_set_out={out}", "inference.proto", "health.proto"],
                   check=True)
    assert out.read_bytes() == (here / "descriptors.binpb").read_bytes(), (
        "serving/rpc/descriptors.binpb is stale: run `make protos`")
