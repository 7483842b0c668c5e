"""BYTES and BF16 (review #25): the wire formats, models that take and return them, the
cache, and ``precision: bf16``."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import orjson
import pytest
import torch
import yaml
from torch import nn

from serving.datatypes import (
    NUMPY_DTYPES,
    bf16_bits,
    bf16_to_float32,
    deserialize_bytes,
    float32_to_bf16,
    serialize_bytes,
)
from serving.errors import InvalidInput
from serving.protocol import decode_request, encode_response
from serving.protocol.codec import HEADER_LENGTH
from tests.support.models import write_model

INFER = "/v2/models/{}/infer"


def _binary(header: dict, *chunks: bytes) -> tuple[bytes, str]:
    head = orjson.dumps(header)
    return head + b"".join(chunks), str(len(head))


def _split(body: bytes, headers: dict) -> tuple[dict, bytes]:
    if HEADER_LENGTH not in headers:
        return orjson.loads(body), b""
    length = int(headers[HEADER_LENGTH])
    return orjson.loads(body[:length]), body[length:]


# -- BYTES on the wire --------------------------------------------------------------------
def test_bytes_serialization_is_tritons_length_prefixed_layout() -> None:
    array = np.array([["a", ""], ["ünï", "x" * 300]], dtype=object)
    raw = serialize_bytes(array)
    assert raw[:5] == struct.pack("<I", 1) + b"a"
    assert raw[5:9] == struct.pack("<I", 0)
    assert len(raw) == 4 * 4 + 1 + 0 + len("ünï".encode()) + 300
    back = deserialize_bytes(memoryview(raw), 4, "x")
    assert back.reshape(2, 2).tolist() == array.tolist()


@pytest.mark.parametrize(("raw", "message"), [
    (struct.pack("<I", 5) + b"abc", "input 'x': BYTES element 0 claims 5 bytes, 3 are left"),
    (struct.pack("<I", 1) + b"a" + b"\x00\x00", "input 'x': BYTES data ends inside element 1's "
     "length"),
    (struct.pack("<I", 1) + b"a" + struct.pack("<I", 0) + b"zz",
     "input 'x': 2 bytes of BYTES data after its 2 elements"),
    (struct.pack("<I", 2) + b"\xff\xfe" + struct.pack("<I", 0),
     "input 'x': BYTES element 0 is not UTF-8 text"),
])
def test_bad_bytes_tensors_are_refused(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match="^" + message.replace("(", r"\(") + "$"):
        deserialize_bytes(memoryview(raw), 2, "x")


@pytest.mark.parametrize("binary", [False, True])
def test_bytes_round_trip(binary: bool) -> None:
    texts = [["hello", "wörld"], ["", "z"]]
    if binary:
        raw = serialize_bytes(np.array(texts, dtype=object))
        body, length = _binary({"inputs": [{"name": "t", "datatype": "BYTES", "shape": [2, 2],
                                            "parameters": {"binary_data_size": len(raw)}}]}, raw)
    else:
        body, length = orjson.dumps({"inputs": [{"name": "t", "datatype": "BYTES",
                                                 "shape": [2, 2], "data": texts}]}), None
    (tensor,) = decode_request(body, length).inputs
    assert tensor.array.dtype == NUMPY_DTYPES["BYTES"]
    assert tensor.array.tolist() == texts
    out, headers = encode_response("m", "1", None, [("t", tensor.array, binary)])
    response, tail = _split(out, headers)
    (entry,) = response["outputs"]
    assert (entry["datatype"], entry["shape"]) == ("BYTES", [2, 2])
    if binary:
        assert entry["parameters"] == {"binary_data_size": len(tail)}
        assert deserialize_bytes(memoryview(tail), 4, "t").tolist() == sum(texts, [])
    else:
        assert entry["data"] == ["hello", "wörld", "", "z"]


def test_bytes_json_data_must_be_strings() -> None:
    body = orjson.dumps({"inputs": [{"name": "t", "datatype": "BYTES", "shape": [2],
                                     "data": ["a", 3]}]})
    with pytest.raises(InvalidInput, match="input 't': BYTES data must be strings"):
        decode_request(body, None)


# -- BF16 on the wire ----------------------------------------------------------------------
def test_bf16_conversion_rounds_to_nearest_even() -> None:
    x = np.array([1.0, -2.5, 3.140625, 1.00390625, 65504.0, 1e-40], dtype=np.float32)
    bits = float32_to_bf16(x)
    expected = torch.from_numpy(x).to(torch.bfloat16).float().numpy()
    np.testing.assert_array_equal(bf16_to_float32(bits), expected)
    assert bf16_bits(bits).dtype == np.dtype("<u2")


@pytest.mark.parametrize("binary_in", [False, True])
@pytest.mark.parametrize("binary_out", [False, True])
def test_bf16_round_trip(binary_in: bool, binary_out: bool) -> None:
    values = np.array([[1.0, -2.0], [0.5, 3.0]], dtype=np.float32)
    if binary_in:
        raw = bf16_bits(float32_to_bf16(values)).tobytes()
        body, length = _binary({"inputs": [{"name": "x", "datatype": "BF16", "shape": [2, 2],
                                            "parameters": {"binary_data_size": 8}}]}, raw)
    else:
        body, length = orjson.dumps({"inputs": [{"name": "x", "datatype": "BF16",
                                                 "shape": [2, 2],
                                                 "data": values.tolist()}]}), None
    (tensor,) = decode_request(body, length).inputs
    assert tensor.array.dtype == NUMPY_DTYPES["BF16"]
    np.testing.assert_array_equal(bf16_to_float32(tensor.array), values)
    out, headers = encode_response("m", "1", None, [("x", tensor.array, binary_out)])
    response, tail = _split(out, headers)
    (entry,) = response["outputs"]
    assert entry["datatype"] == "BF16"
    if binary_out:
        assert tail == bf16_bits(float32_to_bf16(values)).tobytes()
    else:
        assert entry["data"] == values.reshape(-1).tolist()


# -- models that take and return them ------------------------------------------------------
class Shout(nn.Module):
    """BYTES in, BYTES and INT64 out: each text upper-cased, and its length."""

    def forward(self, texts: list[str]) -> tuple[list[str], torch.Tensor]:
        upper = [t.upper() for t in texts]
        lengths = torch.tensor([len(t) for t in texts], dtype=torch.int64)
        return upper, lengths.reshape(-1, 1)


SHOUT_CONFIG = {
    "backend": "eager", "max_batch_size": 8, "max_queue_delay_ms": 5,
    "inputs": [{"name": "text", "datatype": "BYTES", "dims": [1]}],
    "outputs": [{"name": "upper", "datatype": "BYTES", "dims": [1]},
                {"name": "length", "datatype": "INT64", "dims": [1]}],
}


def write_shout(root: Path, config: dict | None = None) -> None:
    model = root / "shout"
    (model / "1").mkdir(parents=True)
    torch.jit.script(Shout()).save(str(model / "1" / "model.pt"))
    (model / "config.yaml").write_text(yaml.safe_dump(config or SHOUT_CONFIG))


class Double(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x * 2, x.float().sum(dim=1, keepdim=True)


BF16_CONFIG = {
    "backend": "eager", "max_batch_size": 8,
    "inputs": [{"name": "x", "datatype": "BF16", "dims": [4]}],
    "outputs": [{"name": "y", "datatype": "BF16", "dims": [4]},
                {"name": "total", "datatype": "FP32", "dims": [1]}],
}


def test_a_model_of_texts_serves_json_and_binary(tmp_path: Path, make_client) -> None:
    root = tmp_path / "repository"
    write_shout(root)
    client = make_client(root)
    texts = [["hello"], ["ünïcode"], [""]]
    response = client.post(INFER.format("shout"), json={"inputs": [
        {"name": "text", "datatype": "BYTES", "shape": [3, 1], "data": texts}]})
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    upper, lengths = torch.jit.script(Shout())(["hello", "ünïcode", ""])  # as the model sees it
    assert outputs["upper"]["data"] == upper
    assert upper[0] == "HELLO"
    assert outputs["upper"]["shape"] == [3, 1]
    assert outputs["length"]["data"] == lengths.reshape(-1).tolist()
    raw = serialize_bytes(np.array(texts, dtype=object))
    body, length = _binary({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [3, 1],
                                        "parameters": {"binary_data_size": len(raw)}}],
                            "parameters": {"binary_data_output": True}}, raw)
    binary = client.post(INFER.format("shout"), content=body,
                         headers={HEADER_LENGTH: length})
    assert binary.status_code == 200, binary.text
    header, tail = _split(binary.content, binary.headers)
    first = header["outputs"][0]["parameters"]["binary_data_size"]
    assert deserialize_bytes(memoryview(tail[:first]), 3, "upper").tolist() == upper


def test_a_bytes_output_of_the_wrong_length_fails_the_batch(tmp_path: Path, make_client
                                                            ) -> None:
    class Short(nn.Module):
        def forward(self, texts: list[str]) -> tuple[list[str], torch.Tensor]:
            return texts[:1], torch.zeros(len(texts), 1, dtype=torch.int64)

    root = tmp_path / "repository"
    model = root / "shout"
    (model / "1").mkdir(parents=True)
    torch.jit.script(Short()).save(str(model / "1" / "model.pt"))
    (model / "config.yaml").write_text(yaml.safe_dump({**SHOUT_CONFIG, "warmup": {
        "enabled": False}}))
    client = make_client(root)
    response = client.post(INFER.format("shout"), json={"inputs": [
        {"name": "text", "datatype": "BYTES", "shape": [2, 1], "data": ["a", "b"]}]})
    assert response.status_code == 500
    assert "output 'upper' has 1 elements; config.yaml declares [2, 1]" in response.json()[
        "error"]


def test_bytes_outputs_need_fixed_dims(tmp_path: Path) -> None:
    from serving.errors import ModelConfigError  # noqa: PLC0415
    from serving.repository import load_model_config  # noqa: PLC0415

    path = tmp_path / "shout" / "config.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump({**SHOUT_CONFIG, "outputs": [
        {"name": "upper", "datatype": "BYTES", "dims": [-1]}]}))
    with pytest.raises(ModelConfigError, match="BYTES output 'upper' needs fixed dims"):
        load_model_config(path, model_name="shout")


def test_bytes_predictions_are_cached(tmp_path: Path, make_client) -> None:
    root = tmp_path / "repository"
    write_shout(root, {**SHOUT_CONFIG, "cache": {"enabled": True}})
    client = make_client(root)
    request = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2, 1],
                           "data": ["ab", "cd"]}]}
    first = client.post(INFER.format("shout"), json=request).json()
    again = client.post(INFER.format("shout"), json={"inputs": [
        {"name": "text", "datatype": "BYTES", "shape": [2, 1], "data": ["ab", "ce"]}]}).json()
    assert first["outputs"][0]["data"] == ["AB", "CD"]
    assert again["outputs"][0]["data"] == ["AB", "CE"]
    registry = client.app.state.runtime.metrics.registry
    assert registry.get_sample_value("aiinfra_cache_hits_total",
                                     {"model": "shout", "tier": "local"}) == 1


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_bf16_model_serves_bf16_tensors(tmp_path: Path, make_client, precision: str) -> None:
    root = tmp_path / "repository"
    write_model(root, "double", {**BF16_CONFIG, "precision": precision}, module=Double(),
                example=torch.zeros(2, 4, dtype=torch.bfloat16))
    client = make_client(root)
    x = np.array([[1.0, -2.0, 0.5, 3.0]], dtype=np.float32)
    raw = bf16_bits(float32_to_bf16(x)).tobytes()
    body, length = _binary({"inputs": [{"name": "x", "datatype": "BF16", "shape": [1, 4],
                                        "parameters": {"binary_data_size": len(raw)}}],
                            "outputs": [{"name": "y", "parameters": {"binary_data": True}},
                                        {"name": "total"}]}, raw)
    response = client.post(INFER.format("double"), content=body, headers={HEADER_LENGTH: length})
    assert response.status_code == 200, response.text
    header, tail = _split(response.content, response.headers)
    y = bf16_to_float32(np.frombuffer(tail, NUMPY_DTYPES["BF16"]))
    np.testing.assert_array_equal(y, (x * 2).reshape(-1))
    assert header["outputs"][1]["data"] == [2.5]


def test_precision_bf16_runs_a_float_model_in_bfloat16(tmp_path: Path, make_client) -> None:
    from tests.support.models import SCALE_CONFIG  # noqa: PLC0415

    root = tmp_path / "repository"
    write_model(root, "scale", {**SCALE_CONFIG, "precision": "bf16"})
    client = make_client(root)
    response = client.post(INFER.format("scale"), json={"inputs": [
        {"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1.001, 2, 3, 4]}]})
    assert response.status_code == 200, response.text
    y = response.json()["outputs"][0]["data"]
    assert y[0] == 2.0  # 1.001 is 1.0 in bfloat16
    assert y[1:] == [4.0, 6.0, 8.0]


@pytest.mark.parametrize("backend", ["tensorrt", "int8"])
def test_backends_that_take_tensors_only_refuse_bytes(tmp_path: Path, backend: str) -> None:
    from serving.errors import ModelConfigError  # noqa: PLC0415
    from serving.repository import load_model_config  # noqa: PLC0415

    path = tmp_path / "shout" / "config.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump({**SHOUT_CONFIG, "backend": backend}))
    with pytest.raises(ModelConfigError, match=f"backend {backend} takes tensors only"):
        load_model_config(path, model_name="shout")


def test_auto_never_picks_tensorrt_for_texts(monkeypatch, tmp_path: Path) -> None:
    from serving.backends import factory  # noqa: PLC0415
    from serving.repository import load_model_config  # noqa: PLC0415

    monkeypatch.setattr(factory, "tensorrt_available", lambda: True)
    path = tmp_path / "shout" / "config.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump({**SHOUT_CONFIG, "backend": "auto"}))
    assert factory.resolve_backend(load_model_config(path, model_name="shout")) == "eager"
