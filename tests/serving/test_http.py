"""The HTTP surface over the small "scale" model: health, metadata, JSON and binary infer, and
every bad request answered with a 4xx ``{"error": ...}`` while the server keeps serving."""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson
import pytest
import torch
import yaml
from fastapi.testclient import TestClient
from torch import nn

from serving import __version__
from serving.app import create_app
from serving.metrics import ServingMetrics
from serving.protocol import HEADER_LENGTH
from serving.settings import Settings
from tests.support.models import SCALE_CONFIG, write_model

INFER = "/v2/models/scale/infer"

MakeClient = Callable[..., TestClient]


def x_input(rows: list[list[float]], **overrides) -> dict:
    return {"name": "x", "datatype": "FP32", "shape": [len(rows), 4],
            "data": rows, **overrides}


def binary_request(header: dict, *chunks: bytes) -> tuple[bytes, dict[str, str]]:
    head = orjson.dumps(header)
    return head + b"".join(chunks), {HEADER_LENGTH: str(len(head)),
                                     "Content-Type": "application/octet-stream"}


def parse_binary_response(response) -> tuple[dict, dict[str, np.ndarray]]:
    """Split a binary-extension response into its JSON header and decoded binary outputs."""
    assert response.headers["content-type"] == "application/octet-stream"
    length = int(response.headers[HEADER_LENGTH])
    header = orjson.loads(response.content[:length])
    dtypes = {"FP32": "<f4", "INT64": "<i8", "BOOL": "?"}
    arrays, offset = {}, length
    for out in header["outputs"]:
        size = out.get("parameters", {}).get("binary_data_size")
        if size is None:
            continue
        raw = response.content[offset:offset + size]
        arrays[out["name"]] = np.frombuffer(raw, dtypes[out["datatype"]]).reshape(out["shape"])
        offset += size
    assert offset == len(response.content), "unclaimed bytes after the binary outputs"
    return header, arrays


def assert_serving(client: TestClient) -> None:
    """A good request still succeeds, with the right values."""
    response = client.post(INFER, json={"inputs": [x_input([[1, 2, 3, 4]])]})
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    assert outputs["y"]["data"] == [2.0, 4.0, 6.0, 8.0]
    assert outputs["total"]["data"] == [10.0]


def assert_error(response, status: int, message: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": message}


@pytest.fixture
def client(scale_repository: Path, make_client: MakeClient) -> TestClient:
    return make_client(scale_repository)


# -- health and metadata -----------------------------------------------------------------------


def test_server_metadata(client: TestClient) -> None:
    response = client.get("/v2")
    assert response.status_code == 200
    assert response.json() == {"name": "aiinfra", "version": __version__,
                               "extensions": ["binary_tensor_data", "schedule_policy",
                                              "model_configuration", "statistics"]}


def test_health(client: TestClient) -> None:
    live = client.get("/v2/health/live")
    assert (live.status_code, live.json()) == (200, {"live": True})
    ready = client.get("/v2/health/ready")
    assert (ready.status_code, ready.json()) == (200, {"ready": True})


SCALE_METADATA = {
    "name": "scale",
    "versions": ["1"],
    "platform": "aiinfra_eager",
    "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
    "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 4]},
                {"name": "total", "datatype": "FP32", "shape": [-1, 1]}],
}


@pytest.mark.parametrize("path", ["/v2/models/scale", "/v2/models/scale/versions/1"])
def test_model_metadata(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.json() == SCALE_METADATA


@pytest.mark.parametrize("path", ["/v2/models/scale/ready", "/v2/models/scale/versions/1/ready"])
def test_model_ready(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert (response.status_code, response.json()) == (200, {"name": "scale", "ready": True})


def test_unserved_version_is_not_ready(client: TestClient) -> None:
    response = client.get("/v2/models/scale/versions/2/ready")
    assert (response.status_code, response.json()) == (503, {"name": "scale", "ready": False})


# -- infer -------------------------------------------------------------------------------------


def test_infer_json(client: TestClient) -> None:
    response = client.post(INFER, json={"id": "r-1", "inputs": [x_input([[1, 2, 3, 4]])]})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "model_name": "scale",
        "model_version": "1",
        "id": "r-1",
        "outputs": [
            {"name": "y", "datatype": "FP32", "shape": [1, 4], "data": [2.0, 4.0, 6.0, 8.0]},
            {"name": "total", "datatype": "FP32", "shape": [1, 1], "data": [10.0]},
        ],
    }


def test_infer_json_version_path_and_batch_of_three(client: TestClient) -> None:
    rows = [[1, 2, 3, 4], [-1, 0.5, 0, 10], [100, 200, 300, 400]]
    response = client.post("/v2/models/scale/versions/1/infer",
                           json={"inputs": [x_input(rows)]})
    assert response.status_code == 200
    body = response.json()
    assert body["model_version"] == "1"
    y, total = body["outputs"]
    assert (y["name"], y["shape"]) == ("y", [3, 4])
    assert y["data"] == [2, 4, 6, 8, -2, 1, 0, 20, 200, 400, 600, 800]
    assert (total["name"], total["shape"]) == ("total", [3, 1])
    assert total["data"] == [10, 9.5, 1000]


def test_infer_flat_data(client: TestClient) -> None:
    response = client.post(INFER, json={"inputs": [
        {"name": "x", "datatype": "FP32", "shape": [2, 4], "data": [1, 1, 1, 1, 2, 2, 2, 2]}]})
    assert response.status_code == 200
    assert response.json()["outputs"][1]["data"] == [4.0, 8.0]


def test_infer_binary(client: TestClient) -> None:
    x = np.array([[1, 2, 3, 4], [5, 6, 7, 8], [0.25, -1, 0, 2]], dtype="<f4")
    body, headers = binary_request({
        "id": "bin-1",
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [3, 4],
                    "parameters": {"binary_data_size": x.nbytes}}],
        "parameters": {"binary_data_output": True},
    }, x.tobytes())
    response = client.post(INFER, content=body, headers=headers)
    assert response.status_code == 200, response.text
    header, arrays = parse_binary_response(response)
    assert header["id"] == "bin-1"
    assert header["model_version"] == "1"
    assert header["outputs"] == [
        {"name": "y", "datatype": "FP32", "shape": [3, 4],
         "parameters": {"binary_data_size": 48}},
        {"name": "total", "datatype": "FP32", "shape": [3, 1],
         "parameters": {"binary_data_size": 12}},
    ]
    np.testing.assert_array_equal(arrays["y"], x * 2)
    np.testing.assert_array_equal(arrays["total"], x.sum(axis=1, keepdims=True))


def test_infer_binary_mixed_output_formats(client: TestClient) -> None:
    x = np.arange(8, dtype="<f4").reshape(2, 4)
    body, headers = binary_request({
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 4],
                    "parameters": {"binary_data_size": x.nbytes}}],
        "outputs": [{"name": "total", "parameters": {"binary_data": False}},
                    {"name": "y", "parameters": {"binary_data": True}}],
    }, x.tobytes())
    response = client.post(INFER, content=body, headers=headers)
    assert response.status_code == 200, response.text
    header, arrays = parse_binary_response(response)
    assert header["outputs"][0] == {"name": "total", "datatype": "FP32", "shape": [2, 1],
                                    "data": [6.0, 22.0]}
    assert list(arrays) == ["y"]
    np.testing.assert_array_equal(arrays["y"], x * 2)


def test_json_request_selecting_one_output(client: TestClient) -> None:
    response = client.post(INFER, json={"inputs": [x_input([[1, 1, 1, 1]])],
                                        "outputs": [{"name": "total"}]})
    assert response.status_code == 200
    assert response.json()["outputs"] == [
        {"name": "total", "datatype": "FP32", "shape": [1, 1], "data": [4.0]}]


def test_tritonclient_binary_infer(client: TestClient) -> None:
    httpclient = pytest.importorskip("tritonclient.http")
    x = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    tensor = httpclient.InferInput("x", [3, 4], "FP32")
    tensor.set_data_from_numpy(x, binary_data=True)
    outputs = [httpclient.InferRequestedOutput("y", binary_data=True),
               httpclient.InferRequestedOutput("total", binary_data=False)]
    body, json_size = httpclient.InferenceServerClient.generate_request_body(
        [tensor], outputs, request_id="tc")
    response = client.post(INFER, content=body, headers={HEADER_LENGTH: str(json_size)})
    assert response.status_code == 200, response.text
    result = httpclient.InferenceServerClient.parse_response_body(
        response.content, header_length=int(response.headers[HEADER_LENGTH]))
    np.testing.assert_array_equal(result.as_numpy("y"), x * 2)
    np.testing.assert_allclose(result.as_numpy("total"), x.sum(axis=1, keepdims=True),
                               rtol=1e-6)


# -- bad requests ------------------------------------------------------------------------------

BAD_JSON_REQUESTS = [
    pytest.param({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3],
                              "data": [1, 2, 3]}]},
                 "input 'x' has shape [1, 3] but model 'scale' expects [-1, 4]",
                 id="wrong-shape"),
    pytest.param({"inputs": [{"name": "x", "datatype": "FP32", "shape": [4],
                              "data": [1, 2, 3, 4]}]},
                 "input 'x' has shape [4] but model 'scale' expects [-1, 4]",
                 id="missing-batch-dim"),
    pytest.param({"inputs": [x_input([[1, 2, 3, 4]], datatype="FP64")]},
                 "input 'x' has datatype FP64 but model 'scale' expects FP32", id="wrong-datatype"),
    pytest.param({"inputs": [x_input([[1, 2, 3, 4]], datatype="STRING")]},
                 "input 'x': datatype 'STRING' is not supported; use one of BOOL, UINT8, UINT16, "
                 "UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64, BF16, BYTES",
                 id="unknown-datatype"),
    pytest.param({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4],
                              "data": [1, 2, 3]}]},
                 "input 'x': 3 values in 'data' but shape [1, 4] needs 4", id="data-length"),
    pytest.param({"inputs": []}, "request needs a non-empty 'inputs' list", id="no-inputs"),
    pytest.param({"inputs": [x_input([[1, 2, 3, 4]]),
                             {"name": "z", "datatype": "FP32", "shape": [1], "data": [1]}]},
                 "model 'scale' has no input named 'z'; its inputs: x", id="unknown-input"),
    pytest.param({"inputs": [{"name": "z", "datatype": "FP32", "shape": [1, 4],
                              "data": [1, 2, 3, 4]}]},
                 "model 'scale' has no input named 'z'; its inputs: x", id="misnamed-input"),
    pytest.param({"inputs": [x_input([[1, 2, 3, 4]] * 9)]},
                 "input 'x' carries a batch of 9; model 'scale' takes 1 to 8", id="batch-too-big"),
    pytest.param({"inputs": [{"name": "x", "datatype": "FP32", "shape": [0, 4], "data": []}]},
                 "input 'x' carries a batch of 0; model 'scale' takes 1 to 8", id="empty-batch"),
    pytest.param({"inputs": [x_input([[1, 2, 3, 4]])], "outputs": [{"name": "nope"}]},
                 "model 'scale' has no output named 'nope'; its outputs: y, total",
                 id="unknown-output"),
    pytest.param({"inputs": [x_input([[1, 2, 3, 4]])], "parameters": {"timeout": -5}},
                 "parameter 'timeout' must be a non-negative integer (microseconds)",
                 id="bad-timeout"),
]


@pytest.mark.parametrize(("payload", "message"), BAD_JSON_REQUESTS)
def test_bad_json_request(client: TestClient, payload: dict, message: str) -> None:
    assert_error(client.post(INFER, json=payload), 400, message)
    assert_serving(client)


def test_malformed_json(client: TestClient) -> None:
    response = client.post(INFER, content=b'{"inputs": [',
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"].startswith("request body is not valid JSON: ")
    assert_serving(client)


def test_binary_header_longer_than_body(client: TestClient) -> None:
    x = np.ones((1, 4), "<f4")
    body, headers = binary_request({"inputs": [
        {"name": "x", "datatype": "FP32", "shape": [1, 4],
         "parameters": {"binary_data_size": 16}}]}, x.tobytes())
    headers[HEADER_LENGTH] = str(len(body) + 1)
    assert_error(client.post(INFER, content=body, headers=headers), 400,
                 f"Inference-Header-Content-Length is {len(body) + 1} but the body has only "
                 f"{len(body)} bytes")
    assert_serving(client)


def test_binary_size_not_matching_shape(client: TestClient) -> None:
    body, headers = binary_request({"inputs": [
        {"name": "x", "datatype": "FP32", "shape": [2, 4],
         "parameters": {"binary_data_size": 16}}]}, b"\x00" * 16)
    assert_error(client.post(INFER, content=body, headers=headers), 400,
                 "input 'x': 16 bytes of binary data but shape [2, 4] of FP32 needs 32")
    assert_serving(client)


def test_raw_binary_request_is_unsupported(client: TestClient) -> None:
    assert_error(client.post(INFER, content=b"\x00" * 16, headers={HEADER_LENGTH: "0"}), 501,
                 "raw binary requests (Inference-Header-Content-Length: 0) are not supported; "
                 "send a JSON header first")
    assert_serving(client)


def test_body_over_max_request_bytes(scale_repository: Path, make_client: MakeClient) -> None:
    client = make_client(scale_repository, max_request_bytes=2048)
    payload = orjson.dumps({"inputs": [x_input([[1.0, 2.0, 3.0, 4.0]] * 8)],
                            "id": "x" * 2048})
    assert_error(client.post(INFER, content=payload,
                             headers={"Content-Type": "application/json"}),
                 413, f"request body of {len(payload)} bytes is over the 2048-byte limit "
                      "(AIINFRA_MAX_REQUEST_BYTES)")
    assert_serving(client)
    # Without a Content-Length (chunked), the limit is enforced while reading.
    response = client.post(INFER, content=iter([payload[:1500], payload[1500:]]),
                           headers={"Content-Type": "application/json"})
    assert_error(response, 413,
                 "request body is over the 2048-byte limit (AIINFRA_MAX_REQUEST_BYTES)")
    assert_serving(client)


NOT_A_VERSION = "is not a version number (0 to 2147483647)"


@pytest.mark.parametrize(("method", "path", "message"), [
    ("post", "/v2/models/nope/infer", "model 'nope' is not in the repository"),
    ("get", "/v2/models/nope", "model 'nope' is not in the repository"),
    ("get", "/v2/models/nope/ready", "model 'nope' is not in the repository"),
    ("post", "/v2/models/scale/versions/2/infer",
     "model 'scale' has no version 2 loaded; served: 1"),
    ("get", "/v2/models/scale/versions/2", "model 'scale' has no version 2; served: 1"),
    ("post", "/v2/models/scale/versions/latest/infer",
     f"model version 'latest' {NOT_A_VERSION}"),
    ("post", "/v2/models/scale/versions/-1/infer", f"model version '-1' {NOT_A_VERSION}"),
    ("get", "/v2/models/scale/versions/v1", f"model version 'v1' {NOT_A_VERSION}"),
    ("get", "/v2/models/scale/versions/one/ready", f"model version 'one' {NOT_A_VERSION}"),
    # str.isdigit takes these; int() refuses the first and the log's integer the second.
    ("post", "/v2/models/scale/versions/%C2%B2/infer", f"model version '²' {NOT_A_VERSION}"),
    ("post", "/v2/models/scale/versions/2147483648/infer",
     f"model version '2147483648' {NOT_A_VERSION}"),
])
def test_not_found(client: TestClient, method: str, path: str, message: str) -> None:
    kwargs = {"json": {"inputs": [x_input([[1, 2, 3, 4]])]}} if method == "post" else {}
    assert_error(getattr(client, method)(path, **kwargs), 404, message)
    assert_serving(client)


def test_unknown_route_keeps_the_error_shape(client: TestClient) -> None:
    assert_error(client.get("/v2/nothing"), 404, "Not Found")
    assert_error(client.post("/v2/models/scale/infer/extra", json={}), 404, "Not Found")
    assert_serving(client)


# -- other repositories ------------------------------------------------------------------------


class Pair(nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b


def write_pair_model(root: Path) -> None:
    """A two-input model ("a", "b": FP32 [-1, 2] → "sum"), which ``write_model`` can't export."""
    batch = torch.export.Dim("batch", min=1, max=8)
    example = (torch.zeros(2, 2), torch.zeros(2, 2))
    program = torch.export.export(Pair(), example, dynamic_shapes=({0: batch}, {0: batch}))
    (root / "pair" / "1").mkdir(parents=True)
    torch.export.save(program, str(root / "pair" / "1" / "model.pt2"))
    (root / "pair" / "config.yaml").write_text(yaml.safe_dump({
        "backend": "eager", "max_batch_size": 8,
        "inputs": [{"name": "a", "datatype": "FP32", "dims": [2]},
                   {"name": "b", "datatype": "FP32", "dims": [2]}],
        "outputs": [{"name": "sum", "datatype": "FP32", "dims": [2]}],
    }))


def test_missing_input_and_mismatched_batches(scale_repository: Path,
                                              make_client: MakeClient) -> None:
    write_pair_model(scale_repository)
    client = make_client(scale_repository)
    a = {"name": "a", "datatype": "FP32", "shape": [1, 2], "data": [1, 2]}
    b = {"name": "b", "datatype": "FP32", "shape": [1, 2], "data": [10, 20]}
    url = "/v2/models/pair/infer"
    assert_error(client.post(url, json={"inputs": [a]}), 400, "model 'pair' needs input(s) b")
    assert_error(client.post(url, json={"inputs": [{**a, "shape": [2, 2], "data": [1] * 4}, b]}),
                 400, "all inputs must carry the same batch size")
    response = client.post(url, json={"inputs": [b, a]})  # any order
    assert response.status_code == 200, response.text
    assert response.json()["outputs"] == [
        {"name": "sum", "datatype": "FP32", "shape": [1, 2], "data": [11.0, 22.0]}]
    assert_serving(client)


def test_a_variable_dim_outside_its_declared_range_is_refused_alone(
        scale_repository: Path, make_client: MakeClient) -> None:
    """``tensorrt.shapes`` bounds what an engine takes: a request outside it gets a 400 of its
    own, on every backend, instead of failing the batch it would have joined on a GPU."""
    root = scale_repository / "ranged"
    batch, width = torch.export.Dim("batch", min=1, max=8), torch.export.Dim("width", max=64)
    program = torch.export.export(Pair(), (torch.zeros(2, 4), torch.zeros(2, 4)),
                                  dynamic_shapes=({0: batch, 1: width}, {0: batch, 1: width}))
    (root / "1").mkdir(parents=True)
    torch.export.save(program, str(root / "1" / "model.pt2"))
    (root / "config.yaml").write_text(yaml.safe_dump({
        "backend": "eager", "max_batch_size": 8,
        "inputs": [{"name": "a", "datatype": "FP32", "dims": [-1]},
                   {"name": "b", "datatype": "FP32", "dims": [-1]}],
        "outputs": [{"name": "sum", "datatype": "FP32", "dims": [-1]}],
        "tensorrt": {"shapes": {"a": {"min": [2], "opt": [4], "max": [6]},
                                "b": {"min": [2], "opt": [4], "max": [6]}}},
    }))
    client = make_client(scale_repository)
    url = "/v2/models/ranged/infer"

    def body(width: int) -> dict:
        return {"inputs": [{"name": name, "datatype": "FP32", "shape": [1, width],
                            "data": [1.0] * width} for name in ("a", "b")]}

    for width in (1, 7):
        assert_error(client.post(url, json=body(width)), 400,
                     f"input 'a' has shape [1, {width}] but model 'ranged' takes dims from "
                     "[2] to [6] (tensorrt.shapes.a)")
    for width in (2, 6):
        response = client.post(url, json=body(width))
        assert response.status_code == 200, response.text
        assert response.json()["outputs"][0]["data"] == [2.0] * width
    assert_serving(client)


class Triple(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x * 3, x.sum(dim=1, keepdim=True)


@pytest.mark.parametrize("policy", ["latest", "all"])
def test_version_policy_over_http(tmp_path: Path, make_client: MakeClient, policy: str) -> None:
    root = tmp_path / "versions"
    config = {**SCALE_CONFIG, "version_policy": policy}
    write_model(root, "scale", config, module=Triple(), version=1)
    write_model(root, "scale", config, version=2)  # Scale: y = 2x
    client = make_client(root)
    served = ["2"] if policy == "latest" else ["1", "2"]
    assert client.get("/v2/models/scale").json()["versions"] == served

    latest = client.post(INFER, json={"inputs": [x_input([[1, 1, 1, 1]])]}).json()
    assert latest["model_version"] == "2"
    assert latest["outputs"][0]["data"] == [2.0] * 4

    old = client.post("/v2/models/scale/versions/1/infer",
                      json={"inputs": [x_input([[1, 1, 1, 1]])]})
    if policy == "latest":
        assert_error(old, 404, "model 'scale' has no version 1 loaded; served: 2")
        assert client.get("/v2/models/scale/versions/1/ready").status_code == 503
    else:
        assert old.status_code == 200
        assert old.json()["model_version"] == "1"
        assert old.json()["outputs"][0]["data"] == [3.0] * 4
        assert client.get("/v2/models/scale/versions/1/ready").json()["ready"] is True


def test_model_without_batching(tmp_path: Path, make_client: MakeClient) -> None:
    root = tmp_path / "nobatch"
    config = {"backend": "eager", "max_batch_size": 0,
              "inputs": [{"name": "x", "datatype": "FP32", "dims": [2, 4]}],
              "outputs": [{"name": "y", "datatype": "FP32", "dims": [2, 4]},
                          {"name": "total", "datatype": "FP32", "dims": [2, 1]}]}
    write_model(root, "flat", config)
    client = make_client(root)
    metadata = client.get("/v2/models/flat").json()
    assert metadata["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [2, 4]}]
    response = client.post("/v2/models/flat/infer", json={"inputs": [
        {"name": "x", "datatype": "FP32", "shape": [2, 4], "data": [[1] * 4, [2] * 4]}]})
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][1]["data"] == [4.0, 8.0]
    assert_error(client.post("/v2/models/flat/infer", json={"inputs": [
        {"name": "x", "datatype": "FP32", "shape": [3, 4], "data": [0] * 12}]}),
        400, "input 'x' has shape [3, 4] but model 'flat' expects [2, 4]")


def test_model_that_cannot_load_answers_503(scale_repository: Path,
                                            make_client: MakeClient) -> None:
    broken = scale_repository / "broken"
    broken.mkdir()
    (broken / "config.yaml").write_text(yaml.safe_dump(SCALE_CONFIG))  # no version directory
    client = make_client(scale_repository, load_models=["scale"])
    reason = (f"model 'broken' has no version: add {broken}/1/model.pt2 (torch.export) "
              "or model.pt (TorchScript)")
    assert_error(client.get("/v2/models/broken"), 503, f"model 'broken' is unavailable: {reason}")
    assert_error(client.post("/v2/models/broken/infer",
                             json={"inputs": [x_input([[1, 2, 3, 4]])]}),
                 503, f"model 'broken' failed to load: {reason}")
    assert client.get("/v2/models/broken/ready").json() == {"name": "broken", "ready": False}
    assert_serving(client)


def test_infer_takes_only_post(make_client, scale_repository) -> None:
    client = make_client(scale_repository)
    response = client.get("/v2/models/scale/infer")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json() == {"error": "infer takes POST"}


def test_start_up_objects_are_frozen_once_ready(scale_repository: Path,
                                                 make_client: Callable[..., TestClient]) -> None:
    gc.unfreeze()
    try:
        make_client(scale_repository, load_models=["scale"], gc_freeze=True)
        # torch, the model and everything else made before readiness: full collections
        # no longer walk them.
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
    make_client(scale_repository, load_models=["scale"])
    assert gc.get_freeze_count() == 0


def test_the_runtime_never_builds_the_demo_repository(tmp_path: Path) -> None:
    """`aiinfra serve` builds it before the server starts; the runtime only refuses clearly."""
    settings = Settings(model_repository=None, demo_repository=tmp_path / "not-built",
                        engine_cache_dir=tmp_path / "engines", log_format="text",
                        gc_freeze=False)
    client = TestClient(create_app(settings, ServingMetrics()))
    with pytest.raises(FileNotFoundError, match="demo repository .*not-built is not built"):
        client.__enter__()
    assert not (tmp_path / "not-built").exists()


def test_metadata_lists_the_versions_being_served_not_those_on_disk(
        tmp_path: Path, make_client: MakeClient) -> None:
    """A new version directory is not served until the model is (re)loaded: metadata must
    not advertise it, nor answer 200 for it, while infer on it is a 404."""
    root = tmp_path / "versions"
    write_model(root, "scale", SCALE_CONFIG, version=1)
    client = make_client(root)
    write_model(root, "scale", SCALE_CONFIG, module=Triple(), version=2)
    assert client.get("/v2/models/scale").json()["versions"] == ["1"]
    assert client.get("/v2/models/scale/versions/2").status_code == 404
    infer_v2 = client.post("/v2/models/scale/versions/2/infer",
                           json={"inputs": [x_input([[1, 1, 1, 1]])]})
    assert infer_v2.status_code == 404


def test_server_metadata_advertises_only_what_this_server_does(
        tmp_path: Path, make_client: MakeClient) -> None:
    root = tmp_path / "repository"
    write_model(root, "scale", SCALE_CONFIG)
    closed = make_client(root).get("/v2").json()["extensions"]
    assert "model_repository" not in closed  # every call would answer 403
    opened = make_client(root, repository_control=True, control_token="t" * 32).get(
        "/v2").json()["extensions"]
    assert "model_repository" in opened


def test_a_priority_is_refused_rather_than_ignored(client: TestClient) -> None:
    response = client.post(INFER, json={"inputs": [x_input([[1, 1, 1, 1]])],
                                        "parameters": {"priority": 1}})
    assert_error(response, 400, "parameter 'priority' is not supported: every request is "
                                "queued in arrival order")
    zero = client.post(INFER, json={"inputs": [x_input([[1, 1, 1, 1]])],
                                    "parameters": {"priority": 0}})
    assert zero.status_code == 200  # tritonclient's default


@pytest.mark.parametrize(("where", "parameter", "value", "message"), [
    ("request", "sequence_id", 7, "parameter 'sequence_id' is not supported: models here are "
     "stateless (no sequence batching)"),
    ("request", "sequence_start", True, "parameter 'sequence_start' is not supported: models "
     "here are stateless (no sequence batching)"),
    ("request", "sequence_end", True, "parameter 'sequence_end' is not supported: models here "
     "are stateless (no sequence batching)"),
    ("input", "shared_memory_region", "r0", "input 'x': parameter 'shared_memory_region' is not "
     "supported: send the tensor in the body (JSON or binary_data_size)"),
    ("input", "shared_memory_byte_size", 16, "input 'x': parameter 'shared_memory_byte_size' is "
     "not supported: send the tensor in the body (JSON or binary_data_size)"),
    ("output", "classification", 3, "output 'y': parameter 'classification' is not supported: "
     "request the raw output and take its top-k"),
    ("output", "shared_memory_region", "r1", "output 'y': parameter 'shared_memory_region' is "
     "not supported: outputs come back in the body (JSON or binary_data)"),
])
def test_parameters_that_would_change_the_answer_are_refused_not_ignored(
        client: TestClient, where: str, parameter: str, value, message: str) -> None:
    """Review #28: a client asking for top-k classes got raw logits with 200; a stateful
    sequence or a shared-memory tensor was silently treated as something else."""
    request: dict = {"inputs": [x_input([[1, 1, 1, 1]])]}
    if where == "request":
        request["parameters"] = {parameter: value}
    elif where == "input":
        request["inputs"][0]["parameters"] = {parameter: value}
    else:
        request["outputs"] = [{"name": "y", "parameters": {parameter: value}}]
    assert_error(client.post(INFER, json=request), 400, message)
    assert client.post(INFER, json={"inputs": [x_input([[1, 1, 1, 1]])]}).status_code == 200


def test_sequence_id_zero_is_no_sequence(client: TestClient) -> None:
    """tritonclient sends ``sequence_id: 0`` and start/end false for a stateless request."""
    response = client.post(INFER, json={"inputs": [x_input([[1, 1, 1, 1]])], "parameters": {
        "sequence_id": 0, "sequence_start": False, "sequence_end": False}})
    assert response.status_code == 200, response.text


class NotFinite(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x / 0, x.sum(dim=1, keepdim=True)


def test_non_finite_outputs_are_refused_in_json_and_sent_as_binary(
        tmp_path: Path, make_client: MakeClient) -> None:
    """Review #15: NaN and infinity became JSON null, which tritonclient cannot read back."""
    root = tmp_path / "repository"
    write_model(root, "scale", SCALE_CONFIG, module=NotFinite())
    client = make_client(root)
    request = {"inputs": [x_input([[0, 1, -1, 2]])]}
    assert_error(client.post(INFER, json=request), 400,
                 "output 'y' holds NaN or infinity, which JSON cannot carry: ask for it as a "
                 "binary tensor (\"binary_data\": true)")
    binary = client.post(INFER, json={**request, "outputs": [
        {"name": "y", "parameters": {"binary_data": True}}, {"name": "total"}]})
    assert binary.status_code == 200, binary.text
    length = int(binary.headers[HEADER_LENGTH])
    y = np.frombuffer(binary.content[length:], "<f4")
    assert np.isnan(y[0])
    assert y[1:].tolist() == [np.inf, -np.inf, np.inf]
