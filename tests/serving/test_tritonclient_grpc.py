"""Triton's own gRPC client, unchanged, against a real ``aiinfra serve`` process: metadata,
readiness, raw tensors of every datatype (BYTES and BF16 included), the configuration and
statistics calls, compression, a bad input per kind, and a drain with calls in flight.

tritonclient.grpc needs protobuf 6 and the main venv holds 5.29 (the policy pack's SDK), so
the client runs in ``.venv-grpc-client`` (``make install``) through
``tests/support/tritonclient_grpc_driver.py``, one scenario per run."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
import torch
import yaml
from torch import nn

from bench import process
from bench.process import SERVE, free_port, loopback_url
from serving.rpc import messages as m
from tests.serving.test_datatypes import BF16_CONFIG, Double, Shout, write_shout
from tests.support.models import SCALE_CONFIG, write_model
from tests.support.rpc import Client, infer_request

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / ".venv-grpc-client" / "bin" / "python"
DRIVER = ROOT / "tests" / "support" / "tritonclient_grpc_driver.py"
NUMERIC = ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
           "FP16", "FP32", "FP64"]
WAIT_S = 60


class Echo(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clone()


def _repository(root: Path, *, slow: bool = False) -> Path:
    if slow:  # requests wait 1.5 s for a batch of 64 that never fills
        write_model(root, "scale", {**SCALE_CONFIG, "max_batch_size": 64,
                                    "max_queue_delay_ms": 1500, "max_queue_size": 64})
        return root
    write_model(root, "scale", SCALE_CONFIG)
    echo = torch.jit.script(Echo())
    for datatype in NUMERIC:
        model = root / f"echo_{datatype.lower()}"
        (model / "1").mkdir(parents=True)
        echo.save(str(model / "1" / "model.pt"))
        (model / "config.yaml").write_text(yaml.safe_dump({
            "backend": "eager", "max_batch_size": 4,
            "inputs": [{"name": "x", "datatype": datatype, "dims": [4]}],
            "outputs": [{"name": "y", "datatype": datatype, "dims": [4]}]}))
    write_shout(root)
    write_model(root, "bf16", BF16_CONFIG, module=Double(),
                example=torch.zeros(2, 4, dtype=torch.bfloat16))
    return root


def _start(root: Path, log: Path, **env: str) -> process.Server:
    if not CLIENT.exists():
        pytest.fail(f"{CLIENT} is missing: `make install` creates the gRPC client's venv")
    port = free_port()
    environment = {"AIINFRA_LOG_FORMAT": "text", "AIINFRA_ENGINE_CACHE_DIR": str(log.parent),
                   "AIINFRA_MAX_REQUEST_BYTES": str(64 * 1024), "AIINFRA_GRPC": "true",
                   **env}
    command = [*SERVE, "--repository", str(root), "--host", "127.0.0.1", "--port", str(port)]
    return process.start_server(command, loopback_url(port), env=environment, log_path=log,
                                timeout_s=120)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("grpc")
    started = _start(_repository(base / "repository"), base / "server.log")
    yield started
    started.stop()


def drive(server: process.Server, scenario: str, **options) -> dict:
    completed = subprocess.run(
        [str(CLIENT), str(DRIVER), f"127.0.0.1:{server.grpc_port}", scenario,
         json.dumps(options)], capture_output=True, text=True, timeout=WAIT_S, check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_metadata_and_readiness(server) -> None:
    seen = drive(server, "metadata")
    assert seen["live"] is True
    assert seen["ready"] is True
    http = httpx.get(f"{server.url}/v2").json()
    assert seen["server"]["name"] == "aiinfra"
    assert seen["server"]["extensions"] == http["extensions"]
    assert seen["model"]["name"] == "scale"
    assert seen["model"]["versions"] == ["1"]
    assert seen["model"]["inputs"] == [{"name": "x", "datatype": "FP32", "shape": ["-1", "4"]}]
    assert seen["model_ready"] is True
    assert seen["version_ready"] is False
    assert seen["unknown"]["status"] == "StatusCode.NOT_FOUND"
    assert seen["unknown"]["message"] == "model 'nope' is not in the repository"


def test_raw_tensors_of_every_datatype_round_trip(server) -> None:
    seen = drive(server, "datatypes")
    for datatype in NUMERIC:
        assert seen[datatype]["equal"], (datatype, seen[datatype])
        assert seen[datatype]["datatype"] == datatype
    upper, lengths = torch.jit.script(Shout())(["hello", "ünïcode", ""])  # as the model sees it
    assert seen["BYTES"] == {"upper": upper, "length": lengths.reshape(-1).tolist()}
    assert upper[0] == "HELLO"
    assert seen["BF16"] == {"y": [3.0, -4.0, 6.5, 0.0], "datatype": "BF16",
                            "total": [2.75]}


def test_model_config_and_inference_statistics(server) -> None:
    seen = drive(server, "config_and_stats")
    config = seen["config"]["config"]
    http = httpx.get(f"{server.url}/v2/models/scale/config").json()
    assert config["name"] == http["name"] == "scale"
    assert config["max_batch_size"] == http["max_batch_size"] == 8
    assert [i["name"] for i in config["input"]] == ["x"]
    assert config["input"][0]["data_type"] == "TYPE_FP32"
    assert config["dynamic_batching"]["max_queue_delay_microseconds"] == "5000"
    assert config["instance_group"][0]["kind"] == "KIND_CPU"
    (stats,) = seen["stats"]["model_stats"]
    http = httpx.get(f"{server.url}/v2/models/scale/stats").json()["model_stats"][0]
    assert stats["name"] == "scale"
    assert stats["version"] == "1"
    assert int(stats["inference_count"]) >= 3
    assert int(stats["inference_stats"]["success"]["count"]) >= 1
    assert int(http["inference_stats"]["success"]["count"]) >= int(
        stats["inference_stats"]["success"]["count"])
    assert "scale" in {s["name"] for s in seen["all"]["model_stats"]}


def test_gzip_compressed_requests(server) -> None:
    assert drive(server, "compression") == {"y": [[0.0, 2.0, 4.0, 6.0], [8.0, 10.0, 12.0, 14.0]]}


def test_bad_input_gets_the_matching_status_and_message(server) -> None:
    seen = drive(server, "bad")
    http = {case: httpx.post(f"{server.url}/v2/models/{path}/infer", json=body).json()["error"]
            for case, path, body in [
                ("wrong shape", "scale", _json("x", np.ones((2, 3)), "FP32")),
                ("wrong datatype", "scale", _json("x", np.ones((2, 4)), "INT32")),
                ("unknown model", "nope", _json("x", np.ones((2, 4)), "FP32")),
                ("unknown version", "scale/versions/9", _json("x", np.ones((2, 4)), "FP32")),
                ("unknown input", "scale", _json("z", np.ones((2, 4)), "FP32")),
                ("unknown output", "scale", {**_json("x", np.ones((2, 4)), "FP32"),
                                             "outputs": [{"name": "w"}]})]}
    statuses = {"wrong shape": "INVALID_ARGUMENT", "wrong datatype": "INVALID_ARGUMENT",
                "unknown model": "NOT_FOUND", "unknown version": "NOT_FOUND",
                "unknown input": "INVALID_ARGUMENT", "unknown output": "INVALID_ARGUMENT"}
    for case, status in statuses.items():
        assert seen[case] == {"status": f"StatusCode.{status}", "message": http[case]}, case
    assert seen["over the size limit"]["status"] == "StatusCode.RESOURCE_EXHAUSTED"
    assert seen["over the size limit"]["message"].endswith(
        "over the 65536-byte limit (AIINFRA_MAX_REQUEST_BYTES)")
    assert seen["raw length"] == {
        "status": "StatusCode.INVALID_ARGUMENT",
        "message": "input 'x': 12 bytes of raw_input_contents but shape [2, 4] of FP32 needs 32"}
    assert seen["typed and raw"] == {
        "status": "StatusCode.INVALID_ARGUMENT",
        "message": "input 'x' has both typed contents and raw_input_contents: send one or "
                   "the other"}
    assert seen["still serving"] == [[2.0, 2.0, 2.0, 2.0]]


def _json(name: str, array: np.ndarray, datatype: str) -> dict:
    return {"inputs": [{"name": name, "datatype": datatype, "shape": list(array.shape),
                        "data": array.reshape(-1).astype(int if datatype == "INT32" else float
                                                         ).tolist()}]}


def test_the_health_service(server) -> None:
    client = Client(f"127.0.0.1:{server.grpc_port}")
    try:
        serving = m.HealthCheckResponse.ServingStatus.Value("SERVING")
        assert client.Check(client.request("Check")).status == serving
        assert client.Check(client.request("Check", service=m.SERVICE)).status == serving
    finally:
        client.close()


def test_sigterm_drains_grpc_calls_in_flight(tmp_path: Path) -> None:
    grace_s = 10
    server = _start(_repository(tmp_path / "repository", slow=True), tmp_path / "server.log",
                    AIINFRA_GRACE_PERIOD_S=str(grace_s))
    count = 6
    try:
        driver = subprocess.Popen(
            [str(CLIENT), str(DRIVER), f"127.0.0.1:{server.grpc_port}", "drain",
             json.dumps({"count": count})], stdout=subprocess.PIPE, text=True)
        assert json.loads(driver.stdout.readline()) == {"sent": True}
        deadline = time.monotonic() + WAIT_S
        while _in_flight(server.url) != count:
            assert time.monotonic() < deadline, "the calls never reached the server"
            time.sleep(0.02)
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.05)
        late = Client(f"127.0.0.1:{server.grpc_port}")
        with pytest.raises(grpc.RpcError) as refused:  # a new call is not taken any more
            late.ModelInfer(infer_request("scale", {"x": np.ones((1, 4), np.float32)}),
                            timeout=5)
        late.close()
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        out, _ = driver.communicate(timeout=WAIT_S)
        results = json.loads(out.strip().splitlines()[-1])["results"]
        assert results == [{"y": [[2.0 * i] * 4]} for i in range(count)]
        code = server.process.wait(grace_s)
        assert time.monotonic() - signalled < grace_s
        assert code == 0, server.log()
    finally:
        server.stop()


def _in_flight(url: str) -> float:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith('aiinfra_inflight_requests{model="scale"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
