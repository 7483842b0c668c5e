"""Real ``aiinfra serve`` processes: Triton's client, draining on SIGTERM, several workers."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests.support.models import SCALE_CONFIG, write_model

tritonhttp = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402

pytestmark = pytest.mark.slow

WAIT_S = 30.0  # the bound on every wait for a server in this file


def json_body(x: np.ndarray) -> dict:
    return {"inputs": [{"name": "x", "datatype": "FP32", "shape": list(x.shape),
                        "data": x.reshape(-1).tolist()}]}


def output(response: httpx.Response, name: str) -> np.ndarray:
    (entry,) = [o for o in response.json()["outputs"] if o["name"] == name]
    return np.asarray(entry["data"], dtype=np.float32).reshape(entry["shape"])


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


# -- Triton's own HTTP client ------------------------------------------------------------
def test_tritonclient_talks_to_the_server(scale_repository, start_server) -> None:
    server = start_server(scale_repository)
    client = tritonhttp.InferenceServerClient(server.url.removeprefix("http://"),
                                              connection_timeout=10, network_timeout=10)
    try:
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready("scale")
        metadata = client.get_model_metadata("scale")
        assert metadata["name"] == "scale"
        assert metadata["versions"] == ["1"]
        assert metadata["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
        assert [o["name"] for o in metadata["outputs"]] == ["y", "total"]

        x = np.arange(12, dtype=np.float32).reshape(3, 4) - 5.5
        for binary in (None, False):  # None: the client's defaults (binary tensors both ways)
            kwargs = {} if binary is None else {"binary_data": binary}
            infer_input = tritonhttp.InferInput("x", list(x.shape), "FP32")
            infer_input.set_data_from_numpy(x, **kwargs)
            outputs = [tritonhttp.InferRequestedOutput("y", **kwargs),
                       tritonhttp.InferRequestedOutput("total", **kwargs)]
            result = client.infer("scale", [infer_input], outputs=outputs, request_id="r1")
            np.testing.assert_array_equal(result.as_numpy("y"), x * 2)
            np.testing.assert_array_equal(result.as_numpy("total"),
                                          x.sum(axis=1, keepdims=True))
            response = result.get_response()
            assert response["id"] == "r1"
            binary_sizes = [o.get("parameters", {}).get("binary_data_size")
                            for o in response["outputs"]]
            if binary is False:
                assert binary_sizes == [None, None], "asked for JSON outputs, got binary"
            else:
                assert binary_sizes == [12 * 4, 3 * 4]

        wrong = np.zeros((1, 3), dtype=np.float32)
        infer_input = tritonhttp.InferInput("x", [1, 3], "FP32")
        infer_input.set_data_from_numpy(wrong)
        with pytest.raises(InferenceServerException) as error:
            client.infer("scale", [infer_input])
        assert error.value.status() == "400"
        assert error.value.message() == (
            "input 'x' has shape [1, 3] but model 'scale' expects [-1, 4]")

        with pytest.raises(InferenceServerException) as missing:
            client.get_model_metadata("nope")
        assert missing.value.status() == "404"

        # Triton's model configuration and statistics extensions.
        config = client.get_model_config("scale")
        assert config["max_batch_size"] == SCALE_CONFIG["max_batch_size"]
        assert [(t["name"], t["data_type"]) for t in config["input"]] == [("x", "TYPE_FP32")]
        statistics = client.get_inference_statistics("scale")
        (stats,) = statistics["model_stats"]
        assert stats["version"] == "1"
        assert stats["inference_stats"]["success"]["count"] == 2
        assert stats["inference_stats"]["fail"]["count"] == 1
        assert stats["inference_count"] == 6
        assert client.get_inference_statistics()["model_stats"] == [stats]
    finally:
        client.close()


# -- graceful drain ----------------------------------------------------------------------
@pytest.fixture
def slow_batch_repository(tmp_path: Path) -> Path:
    """Requests sit queued for 1.5 s waiting for a batch of 64 that never fills."""
    root = tmp_path / "slow-batch"
    write_model(root, "scale", {**SCALE_CONFIG, "max_batch_size": 64,
                                "max_queue_delay_ms": 1500, "max_queue_size": 64})
    return root


def test_sigterm_drains_queued_requests(slow_batch_repository, start_server) -> None:
    grace_s = 10
    server = start_server(slow_batch_repository,
                          extra_env={"AIINFRA_GRACE_PERIOD_S": str(grace_s)})
    inputs = [np.full((1, 4), i, dtype=np.float32) for i in range(6)]
    finished: list[float] = []

    def call(x: np.ndarray) -> httpx.Response:
        response = httpx.post(f"{server.url}/v2/models/scale/infer", json=json_body(x),
                              timeout=WAIT_S)
        finished.append(time.monotonic())
        return response

    with ThreadPoolExecutor(len(inputs)) as pool:
        futures = [pool.submit(call, x) for x in inputs]
        deadline = time.monotonic() + WAIT_S
        key = ("aiinfra_inflight_requests", (("model", "scale"),))
        while scrape(server.url).get(key) != len(inputs):
            assert time.monotonic() < deadline, "the requests never reached the server"
            time.sleep(0.02)
        assert not finished, "a request finished before its batch could have closed"

        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.005)  # let the signal be delivered before probing readiness
        probes = []
        while not all(f.done() for f in futures):
            assert time.monotonic() - signalled < WAIT_S, "the queued requests never finished"
            try:
                probes.append(httpx.get(f"{server.url}/v2/health/ready", timeout=1).status_code)
            except httpx.TransportError:
                probes.append("refused")
            time.sleep(0.01)
        responses = [f.result() for f in futures]

    assert probes, "readiness was never probed while draining"
    assert 200 not in probes, f"ready while draining: {probes}"
    for x, response in zip(inputs, responses, strict=True):
        assert response.status_code == 200, response.text
        np.testing.assert_array_equal(output(response, "y"), x * 2)
        np.testing.assert_array_equal(output(response, "total"), x.sum(axis=1, keepdims=True))
    assert min(finished) > signalled, "requests were not queued when SIGTERM arrived"

    code = server.process.wait(grace_s)
    assert time.monotonic() - signalled < grace_s
    assert "model unloaded" in server.log()
    assert code == 0, server.log()


@pytest.mark.parametrize(("request_coding", "response_coding"),
                         [("gzip", "gzip"), ("deflate", "deflate"), ("gzip", None),
                          (None, "deflate")])
def test_tritonclient_compression(scale_repository, start_server, request_coding,
                                  response_coding) -> None:
    """tritonclient compresses the request body and asks for a compressed response."""
    server = start_server(scale_repository)
    client = tritonhttp.InferenceServerClient(server.url.removeprefix("http://"),
                                              connection_timeout=10, network_timeout=10)
    try:
        x = np.arange(16, dtype=np.float32).reshape(4, 4)
        for binary in (True, False):
            infer_input = tritonhttp.InferInput("x", list(x.shape), "FP32")
            infer_input.set_data_from_numpy(x, binary_data=binary)
            result = client.infer(
                "scale", [infer_input],
                outputs=[tritonhttp.InferRequestedOutput("y", binary_data=binary)],
                request_compression_algorithm=request_coding,
                response_compression_algorithm=response_coding)
            np.testing.assert_array_equal(result.as_numpy("y"), x * 2)
    finally:
        client.close()


def test_tritonclient_bytes_and_bf16_round_trips(tmp_path, start_server) -> None:
    """BYTES (JSON strings and length-prefixed binary) and BF16 (binary, as ml_dtypes
    bfloat16 arrays) through Triton's own client."""
    import ml_dtypes  # noqa: PLC0415 - tritonclient's own BF16 dtype
    import torch  # noqa: PLC0415

    from tests.serving.test_datatypes import BF16_CONFIG, Double, Shout, write_shout  # noqa: PLC0415

    root = tmp_path / "typed"
    write_shout(root)
    write_model(root, "double", BF16_CONFIG, module=Double(),
                example=torch.zeros(2, 4, dtype=torch.bfloat16))
    server = start_server(root)
    client = tritonhttp.InferenceServerClient(server.url.removeprefix("http://"),
                                              connection_timeout=10, network_timeout=10)
    try:
        texts = np.array([["hello"], ["wörld"]], dtype=object)
        upper, _ = torch.jit.script(Shout())(["hello", "wörld"])
        for binary in (True, False):
            text = tritonhttp.InferInput("text", [2, 1], "BYTES")
            text.set_data_from_numpy(texts, binary_data=binary)
            result = client.infer("shout", [text], outputs=[
                tritonhttp.InferRequestedOutput("upper", binary_data=binary),
                tritonhttp.InferRequestedOutput("length", binary_data=binary)])
            got = [v.decode() if isinstance(v, bytes) else v
                   for v in result.as_numpy("upper").reshape(-1)]
            assert got == upper
            assert result.as_numpy("length").shape == (2, 1)

        x = np.array([[1.0, -2.0, 0.5, 3.0]], dtype=ml_dtypes.bfloat16)
        bf16 = tritonhttp.InferInput("x", [1, 4], "BF16")
        bf16.set_data_from_numpy(x, binary_data=True)
        result = client.infer("double", [bf16], outputs=[
            tritonhttp.InferRequestedOutput("y", binary_data=True),
            tritonhttp.InferRequestedOutput("total", binary_data=False)])
        np.testing.assert_array_equal(result.as_numpy("y").astype(np.float32),
                                      x.astype(np.float32) * 2)
        np.testing.assert_array_equal(result.as_numpy("total"), [[2.5]])
    finally:
        client.close()


# -- several workers ---------------------------------------------------------------------
def _per_worker(directory: Path, name: str, labels: tuple = (),
                kind: str = "counter") -> dict[int, float]:
    """``name{labels}`` as each worker wrote it (one file of each kind per worker process)."""
    found = {}
    for path in directory.glob(f"{kind}_*.db"):
        alone = directory / f"alone-{path.stem}-{time.monotonic_ns()}"
        alone.mkdir()
        shutil.copy(path, alone / path.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(alone))
        for family in registry.collect():
            for sample in family.samples:
                if sample.name == name and tuple(sorted(sample.labels.items())) == labels:
                    found[int(path.stem.rsplit("_", 1)[1])] = sample.value
    return found


def test_metrics_add_up_across_workers(scale_repository, start_server, tmp_path) -> None:
    metrics_dir = tmp_path / "metrics"
    server = start_server(scale_repository, args=("--workers", "2"),
                          extra_env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)})
    loaded = ("aiinfra_models_loaded", ())
    deadline = time.monotonic() + WAIT_S
    while scrape(server.url).get(loaded) != 2:  # both workers have loaded the model
        assert time.monotonic() < deadline, f"both workers never loaded:\n{server.log()}"
        time.sleep(0.1)

    lock = threading.Lock()
    statuses: list[int] = []

    def call(i: int) -> None:
        x = np.full((1, 4), i, dtype=np.float32)
        with httpx.Client(timeout=WAIT_S) as client:  # a new connection each time
            response = client.post(f"{server.url}/v2/models/scale/infer", json=json_body(x))
        np.testing.assert_array_equal(output(response, "y"), x * 2)
        with lock:
            statuses.append(response.status_code)

    with ThreadPoolExecutor(4) as pool:
        for future in [pool.submit(call, i) for i in range(40)]:
            future.result(WAIT_S)
    assert statuses == [200] * 40

    success = ("aiinfra_inference_requests_total",
               (("model", "scale"), ("outcome", "success"), ("protocol", "http")))
    for _ in range(4):  # each scrape may be answered by either worker
        samples = scrape(server.url)
        assert samples.get(success) == 40
        assert samples.get(("aiinfra_inferences_total", (("model", "scale"),))) == 40
        assert samples.get(loaded) == 2
    # Both workers served (one worker serving all 40 would pass the sums above).
    served = _per_worker(metrics_dir, "aiinfra_inference_requests_total",
                         (("model", "scale"), ("outcome", "success"), ("protocol", "http")))
    assert len(served) == 2, served
    assert sum(served.values()) == 40
    assert all(count > 0 for count in served.values()), served

    # A worker that dies is replaced; its live gauges leave the merged view (review #7).
    victim = min(served)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + WAIT_S
    while sorted(_per_worker(metrics_dir, "aiinfra_models_loaded",
                             kind="gauge_livesum").values()) != [1, 1, 1]:
        # the dead worker's file, the survivor's, and the replacement's once it has loaded
        assert time.monotonic() < deadline, f"the worker was not replaced:\n{server.log()}"
        time.sleep(0.1)
    for _ in range(4):
        samples = scrape(server.url)
        assert samples.get(loaded) == 2
        assert samples.get(success) == 40  # what the dead worker served is history

    assert server.stop(signal.SIGTERM, timeout=WAIT_S) == 0, server.log()
