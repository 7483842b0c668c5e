"""Unit tests of the wire formats: ``decode_request`` and ``encode_response``.

Binary bodies are built by hand the way Triton's binary tensor extension lays them out: a JSON
header of ``Inference-Header-Content-Length`` bytes, then raw little-endian row-major tensors in
input order, each sized by its ``binary_data_size`` parameter.
"""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from serving.datatypes import DATATYPES, NUMPY_DTYPES
from serving.errors import InvalidInput, Unsupported
from serving.inference import select_outputs
from serving.protocol import RequestedOutput, decode_request, encode_response
from serving.protocol.codec import HEADER_LENGTH
from serving.repository import ModelConfig

# Two rows of three values per datatype, including each integer type's extremes.
VALUES: dict[str, list[list]] = {
    "BOOL": [[True, False, True], [False, False, True]],
    "INT8": [[-128, 0, 127], [1, -1, 5]],
    "INT16": [[-32768, 0, 32767], [2, -2, 300]],
    "INT32": [[-(2**31), 0, 2**31 - 1], [3, -3, 70000]],
    "INT64": [[-(2**63), 0, 2**63 - 1], [4, -4, 2**40]],
    "UINT8": [[0, 1, 255], [7, 8, 9]],
    "UINT16": [[0, 1, 65535], [7, 8, 9]],
    "UINT32": [[0, 1, 2**32 - 1], [7, 8, 9]],
    "UINT64": [[0, 1, 2**64 - 1], [7, 8, 2**63]],
    "FP16": [[0.5, -1.25, 65504.0], [0.0, 3.0, -0.001]],
    "FP32": [[0.1, -2.5, 3.0e38], [1e-30, 0.0, 7.0]],
    "FP64": [[0.1, -1e300, 2.5], [1e-300, 0.0, -7.25]],
}


def expected_array(datatype: str) -> np.ndarray:
    return np.array(VALUES[datatype], dtype=NUMPY_DTYPES[datatype])


def json_body(header: dict) -> bytes:
    return orjson.dumps(header)


def binary_body(header: dict, *chunks: bytes) -> tuple[bytes, str]:
    """A binary-extension body and its ``Inference-Header-Content-Length`` value."""
    head = orjson.dumps(header)
    return head + b"".join(chunks), str(len(head))


def split_response(body: bytes, headers: dict[str, str]) -> tuple[dict, bytes]:
    """The JSON header and the binary tail of a response (tail empty for plain JSON)."""
    if HEADER_LENGTH not in headers:
        assert headers == {"content-type": "application/json"}
        return orjson.loads(body), b""
    assert headers["content-type"] == "application/octet-stream"
    length = int(headers[HEADER_LENGTH])
    return orjson.loads(body[:length]), body[length:]


# BF16 and BYTES have their own layouts: tests/serving/test_datatypes.py.
NUMERIC = [d for d in DATATYPES if d not in ("BF16", "BYTES")]


def test_every_datatype_has_values() -> None:
    assert set(VALUES) == set(NUMERIC)
    assert len(DATATYPES) == 14


# -- JSON round trip ---------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["nested", "flat"])
@pytest.mark.parametrize("datatype", NUMERIC)
def test_json_round_trip(datatype: str, layout: str) -> None:
    expected = expected_array(datatype)
    data = VALUES[datatype] if layout == "nested" else [v for row in VALUES[datatype] for v in row]
    request = decode_request(json_body({"inputs": [
        {"name": "x", "datatype": datatype, "shape": [2, 3], "data": data}]}), None)

    [tensor] = request.inputs
    assert (tensor.name, tensor.datatype, tensor.shape) == ("x", datatype, (2, 3))
    assert tensor.array.dtype == NUMPY_DTYPES[datatype]
    assert tensor.array.shape == (2, 3)
    np.testing.assert_array_equal(tensor.array, expected)
    assert request.id is None
    assert request.outputs is None
    assert request.binary_output is False

    body, headers = encode_response("m", "3", None, [("out", tensor.array, False)])
    response, tail = split_response(body, headers)
    assert tail == b""
    assert response["model_name"] == "m"
    assert response["model_version"] == "3"
    assert "id" not in response
    [out] = response["outputs"]
    assert set(out) == {"name", "datatype", "shape", "data"}
    assert (out["name"], out["datatype"], out["shape"]) == ("out", datatype, [2, 3])
    assert len(out["data"]) == 6
    if datatype == "BOOL" or NUMPY_DTYPES[datatype].kind in "iu":
        # Exact integers and booleans, even 2**64 - 1 and -2**63.
        assert out["data"] == expected.reshape(-1).tolist()
    else:
        decoded = np.array(out["data"], dtype=np.float64).astype(NUMPY_DTYPES[datatype])
        np.testing.assert_array_equal(decoded, expected.reshape(-1))


# -- binary round trip -------------------------------------------------------------------------


@pytest.mark.parametrize("datatype", NUMERIC)
def test_binary_round_trip(datatype: str) -> None:
    expected = expected_array(datatype)
    raw = expected.astype(expected.dtype.newbyteorder("<")).tobytes()
    assert len(raw) == 6 * NUMPY_DTYPES[datatype].itemsize
    body, length = binary_body({
        "inputs": [{"name": "x", "datatype": datatype, "shape": [2, 3],
                    "parameters": {"binary_data_size": len(raw)}}],
        "outputs": [{"name": "x", "parameters": {"binary_data": True}}],
    }, raw)
    request = decode_request(body, length)

    [tensor] = request.inputs
    assert (tensor.name, tensor.datatype, tensor.shape) == ("x", datatype, (2, 3))
    assert tensor.array.dtype == NUMPY_DTYPES[datatype]
    np.testing.assert_array_equal(tensor.array, expected)
    assert request.outputs == [RequestedOutput("x", True)]

    out_body, headers = encode_response("m", "1", None, [("x", tensor.array, True)])
    response, tail = split_response(out_body, headers)
    [out] = response["outputs"]
    assert out == {"name": "x", "datatype": datatype, "shape": [2, 3],
                   "parameters": {"binary_data_size": len(raw)}}
    assert tail == raw  # little-endian, row-major, nothing else after the header
    np.testing.assert_array_equal(
        np.frombuffer(tail, NUMPY_DTYPES[datatype]).reshape(2, 3), expected)


def test_binary_inputs_are_read_in_order_at_their_offsets() -> None:
    a = np.arange(6, dtype="<i2").reshape(2, 3)
    b = np.array([1.5, -2.0], dtype="<f8")
    c = np.array([True, False, True])
    body, length = binary_body({"inputs": [
        {"name": "a", "datatype": "INT16", "shape": [2, 3],
         "parameters": {"binary_data_size": a.nbytes}},
        {"name": "j", "datatype": "INT32", "shape": [2], "data": [5, 6]},
        {"name": "b", "datatype": "FP64", "shape": [2], "parameters": {"binary_data_size": 16}},
        {"name": "c", "datatype": "BOOL", "shape": [3], "parameters": {"binary_data_size": 3}},
    ]}, a.tobytes(), b.tobytes(), c.tobytes())
    request = decode_request(body, length)
    assert [t.name for t in request.inputs] == ["a", "j", "b", "c"]
    np.testing.assert_array_equal(request.inputs[0].array, a)
    np.testing.assert_array_equal(request.inputs[1].array, np.array([5, 6], dtype=np.int32))
    np.testing.assert_array_equal(request.inputs[2].array, b)
    np.testing.assert_array_equal(request.inputs[3].array, c)


def test_header_only_binary_request_is_plain_json() -> None:
    body, length = binary_body({"inputs": [
        {"name": "x", "datatype": "FP32", "shape": [1], "data": [2.5]}]})
    [tensor] = decode_request(body, length).inputs
    np.testing.assert_array_equal(tensor.array, np.array([2.5], dtype=np.float32))


def test_empty_integer_tensor_decodes() -> None:
    request = decode_request(json_body({"inputs": [
        {"name": "x", "datatype": "INT32", "shape": [0, 4], "data": []}]}), None)
    assert request.inputs[0].array.shape == (0, 4)
    assert request.inputs[0].array.dtype == np.int32


def test_numbers_are_cast_to_the_declared_datatype() -> None:
    request = decode_request(json_body({"inputs": [
        {"name": "x", "datatype": "FP16", "shape": [2], "data": [1, 2]},
        {"name": "y", "datatype": "INT64", "shape": [1], "data": [True]},
    ]}), None)
    assert request.inputs[0].array.dtype == np.float16
    assert request.inputs[0].array.tolist() == [1.0, 2.0]
    assert request.inputs[1].array.tolist() == [1]


def test_big_endian_output_is_sent_little_endian() -> None:
    array = np.array([1.0, 2.0], dtype=">f4")
    body, headers = encode_response("m", "1", None, [("y", array, True)])
    response, tail = split_response(body, headers)
    assert response["outputs"][0]["datatype"] == "FP32"
    assert tail == np.array([1.0, 2.0], dtype="<f4").tobytes()
    body, headers = encode_response("m", "1", None, [("y", array, False)])
    assert split_response(body, headers)[0]["outputs"][0]["data"] == [1.0, 2.0]


# -- id, requested outputs, binary_data_output -------------------------------------------------


def test_id_is_decoded_and_echoed() -> None:
    request = decode_request(json_body({"id": "req-42", "inputs": [
        {"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}]}), None)
    assert request.id == "req-42"
    body, headers = encode_response("m", "1", request.id,
                                    [("y", np.ones(1, np.float32), False)])
    response, _ = split_response(body, headers)
    assert response["id"] == "req-42"
    assert list(response) == ["model_name", "model_version", "id", "outputs"]


def test_requested_outputs_and_binary_flags_are_decoded() -> None:
    request = decode_request(json_body({
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}],
        "outputs": [{"name": "a", "parameters": {"binary_data": True}},
                    {"name": "b", "parameters": {"binary_data": False}},
                    {"name": "c"}],
        "parameters": {"binary_data_output": True},
    }), None)
    assert request.outputs == [RequestedOutput("a", True), RequestedOutput("b", False),
                               RequestedOutput("c", None)]
    assert request.binary_output is True


SELECT_CONFIG = ModelConfig.model_validate({
    "name": "m",
    "inputs": [{"name": "x", "datatype": "FP32", "dims": [2]}],
    "outputs": [{"name": "a", "datatype": "FP32", "dims": [2]},
                {"name": "b", "datatype": "INT32", "dims": [2]},
                {"name": "c", "datatype": "BOOL", "dims": [2]}],
})
SELECT_ARRAYS = [np.array([[1.0, 2.0]], np.float32), np.array([[3, 4]], np.int32),
                 np.array([[True, False]])]


def _select(header: dict) -> tuple[dict, bytes]:
    header = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [0, 0]}],
              **header}
    request = decode_request(json_body(header), None)
    outputs = select_outputs(SELECT_CONFIG, request, SELECT_ARRAYS)
    return split_response(*encode_response("m", "1", request.id, outputs))


def test_all_outputs_in_json_by_default() -> None:
    response, tail = _select({})
    assert tail == b""
    assert response["outputs"] == [
        {"name": "a", "datatype": "FP32", "shape": [1, 2], "data": [1.0, 2.0]},
        {"name": "b", "datatype": "INT32", "shape": [1, 2], "data": [3, 4]},
        {"name": "c", "datatype": "BOOL", "shape": [1, 2], "data": [True, False]},
    ]


def test_binary_data_output_makes_every_output_binary() -> None:
    response, tail = _select({"parameters": {"binary_data_output": True}})
    assert [o["parameters"] for o in response["outputs"]] == [
        {"binary_data_size": 8}, {"binary_data_size": 8}, {"binary_data_size": 2}]
    assert all("data" not in o for o in response["outputs"])
    assert tail == b"".join(a.tobytes() for a in SELECT_ARRAYS)


def test_requested_outputs_pick_order_and_format() -> None:
    response, tail = _select({
        "parameters": {"binary_data_output": True},
        "outputs": [{"name": "c", "parameters": {"binary_data": False}},
                    {"name": "a"},
                    {"name": "b", "parameters": {"binary_data": True}}],
    })
    assert response["outputs"] == [
        {"name": "c", "datatype": "BOOL", "shape": [1, 2], "data": [True, False]},
        {"name": "a", "datatype": "FP32", "shape": [1, 2],
         "parameters": {"binary_data_size": 8}},
        {"name": "b", "datatype": "INT32", "shape": [1, 2],
         "parameters": {"binary_data_size": 8}},
    ]
    assert tail == SELECT_ARRAYS[0].tobytes() + SELECT_ARRAYS[1].tobytes()


def test_binary_data_true_on_one_output_of_a_json_request() -> None:
    response, tail = _select({"outputs": [{"name": "b", "parameters": {"binary_data": True}},
                                          {"name": "a", "parameters": {"binary_data": False}}]})
    assert response["outputs"] == [
        {"name": "b", "datatype": "INT32", "shape": [1, 2],
         "parameters": {"binary_data_size": 8}},
        {"name": "a", "datatype": "FP32", "shape": [1, 2], "data": [1.0, 2.0]},
    ]
    assert tail == np.array([3, 4], "<i4").tobytes()


# -- interoperability with Triton's own client -------------------------------------------------


def test_tritonclient_bodies_decode_and_responses_parse() -> None:
    httpclient = pytest.importorskip("tritonclient.http")
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    flags = np.array([True, False])
    inputs = [httpclient.InferInput("x", [2, 4], "FP32"),
              httpclient.InferInput("flags", [2], "BOOL")]
    inputs[0].set_data_from_numpy(x, binary_data=True)
    inputs[1].set_data_from_numpy(flags, binary_data=False)
    outputs = [httpclient.InferRequestedOutput("y", binary_data=True)]
    body, json_size = httpclient.InferenceServerClient.generate_request_body(
        inputs, outputs, request_id="t-1")

    request = decode_request(body, str(json_size))
    assert request.id == "t-1"
    np.testing.assert_array_equal(request.inputs[0].array, x)
    np.testing.assert_array_equal(request.inputs[1].array, flags)
    assert request.outputs == [RequestedOutput("y", True)]

    out_body, headers = encode_response("m", "1", request.id,
                                        [("y", x * 2, True), ("n", np.array([7], np.int64), False)])
    result = httpclient.InferenceServerClient.parse_response_body(
        out_body, header_length=int(headers[HEADER_LENGTH]))
    np.testing.assert_array_equal(result.as_numpy("y"), x * 2)
    np.testing.assert_array_equal(result.as_numpy("n"), np.array([7], np.int64))
    assert result.get_response()["id"] == "t-1"


# -- decode errors -----------------------------------------------------------------------------

ALL_TYPES = ("BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64, "
             "BF16, BYTES")


def _one_input(**fields) -> bytes:
    return json_body({"inputs": [{"name": "x", **fields}]})


JSON_ERRORS = [
    pytest.param(b"[1, 2]", "request body must be a JSON object with an 'inputs' list",
                 id="array-body"),
    pytest.param(b'"text"', "request body must be a JSON object with an 'inputs' list",
                 id="string-body"),
    pytest.param(b"{}", "request needs a non-empty 'inputs' list", id="no-inputs"),
    pytest.param(b'{"inputs": []}', "request needs a non-empty 'inputs' list", id="empty-inputs"),
    pytest.param(b'{"inputs": {"name": "x"}}', "request needs a non-empty 'inputs' list",
                 id="inputs-not-list"),
    pytest.param(b'{"inputs": [{"datatype": "FP32"}]}',
                 "each input must be an object with a string 'name'", id="input-without-name"),
    pytest.param(_one_input(datatype="FP8", shape=[1], data=[1]),
                 f"input 'x': datatype 'FP8' is not supported; use one of {ALL_TYPES}",
                 id="unknown-datatype"),
    pytest.param(_one_input(shape=[1], data=[1]),
                 f"input 'x': datatype None is not supported; use one of {ALL_TYPES}",
                 id="missing-datatype"),
    pytest.param(_one_input(datatype="FP32", shape=[2, -1], data=[1, 2]),
                 "input 'x': 'shape' must be a list of non-negative integers",
                 id="negative-dim"),
    pytest.param(_one_input(datatype="FP32", shape="2", data=[1, 2]),
                 "input 'x': 'shape' must be a list of non-negative integers", id="shape-string"),
    pytest.param(_one_input(datatype="FP32", shape=[1.5], data=[1]),
                 "input 'x': 'shape' must be a list of non-negative integers", id="float-dim"),
    pytest.param(_one_input(datatype="FP32", shape=[True], data=[1]),
                 "input 'x': 'shape' must be a list of non-negative integers", id="bool-dim"),
    pytest.param(_one_input(datatype="FP32", data=[1]),
                 "input 'x': 'shape' must be a list of non-negative integers", id="no-shape"),
    pytest.param(_one_input(datatype="FP32", shape=[2, 3], data=[1, 2, 3, 4, 5]),
                 "input 'x': 5 values in 'data' but shape [2, 3] needs 6", id="count-flat"),
    pytest.param(_one_input(datatype="FP32", shape=[2, 3], data=[[1, 2, 3], [4, 5, 6], [7, 8, 9]]),
                 "input 'x': 9 values in 'data' but shape [2, 3] needs 6", id="count-nested"),
    pytest.param(_one_input(datatype="FP32", shape=[2, 2], data=[[1, 2], [3]]),
                 "input 'x': 'data' is ragged; send a flat or rectangular nested list",
                 id="ragged"),
    pytest.param(_one_input(datatype="INT32", shape=[2], data=[1.5, 2]),
                 "input 'x': INT32 data holds non-integer numbers", id="float-for-int"),
    pytest.param(_one_input(datatype="UINT8", shape=[2], data=[1.0, 2.0]),
                 "input 'x': UINT8 data holds non-integer numbers", id="float-for-uint"),
    pytest.param(_one_input(datatype="INT8", shape=[2], data=[1, 300]),
                 "input 'x': a value is out of range for INT8", id="int8-overflow"),
    pytest.param(_one_input(datatype="UINT8", shape=[2], data=[1, -1]),
                 "input 'x': a value is out of range for UINT8", id="uint8-negative"),
    pytest.param(_one_input(datatype="INT64", shape=[1], data=[2**63]),
                 "input 'x': a value is out of range for INT64", id="int64-overflow"),
    pytest.param(_one_input(datatype="FP32", shape=[2], data=["a", "b"]),
                 "input 'x': 'data' must hold only FP32 numbers", id="strings"),
    pytest.param(_one_input(datatype="FP32", shape=[2], data=[1, None]),
                 "input 'x': 'data' must hold only FP32 numbers", id="null-value"),
    pytest.param(_one_input(datatype="BOOL", shape=[2], data=[1, 0]),
                 "input 'x': BOOL data must be true/false", id="ints-for-bool"),
    pytest.param(_one_input(datatype="FP32", shape=[1]),
                 "input 'x' has neither 'data' nor a 'binary_data_size' parameter",
                 id="no-data"),
    pytest.param(_one_input(datatype="FP32", shape=[1], data=[1], parameters=[1]),
                 "input 'x': 'parameters' must be an object", id="input-parameters-list"),
    pytest.param(json_body({"inputs": [
        {"name": "x", "datatype": "FP32", "shape": [1], "data": [1]},
        {"name": "x", "datatype": "FP32", "shape": [1], "data": [2]}]}),
                 "input 'x' appears more than once", id="duplicate-input"),
    pytest.param(json_body({"id": 7, "inputs": [
        {"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}]}),
                 "'id' must be a string", id="id-not-string"),
    pytest.param(json_body({"parameters": ["binary_data_output"], "inputs": [
        {"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}]}),
                 "'parameters' must be an object", id="request-parameters-list"),
    pytest.param(json_body({"outputs": {"name": "y"}, "inputs": [
        {"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}]}),
                 "'outputs' must be a list", id="outputs-not-list"),
    pytest.param(json_body({"outputs": [{"parameters": {}}], "inputs": [
        {"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}]}),
                 "each requested output must be an object with a string 'name'",
                 id="output-without-name"),
    pytest.param(json_body({"outputs": [{"name": "y", "parameters": 3}], "inputs": [
        {"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}]}),
                 "output 'y': 'parameters' must be an object", id="output-parameters-int"),
    pytest.param(_one_input(datatype="FP32", shape=[1], parameters={"binary_data_size": 4}),
                 "input 'x': binary_data_size 4 runs past the end of the body (0 bytes left)",
                 id="binary-size-without-binary-body"),
]


@pytest.mark.parametrize(("body", "message"), JSON_ERRORS)
def test_json_decode_errors(body: bytes, message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        decode_request(body, None)
    assert info.value.message == message
    assert str(info.value) == message
    assert info.value.status == 400


@pytest.mark.parametrize("body", [b'{"inputs": [', b"", b"not json", b"{'inputs': []}"])
def test_malformed_json(body: bytes) -> None:
    with pytest.raises(InvalidInput, match=r"^request body is not valid JSON: \S") as info:
        decode_request(body, None)
    assert info.value.status == 400


def test_malformed_binary_header() -> None:
    body = b'{"inputs": [' + b"\x00" * 8
    with pytest.raises(InvalidInput, match=r"^request body is not valid JSON: "):
        decode_request(body, "12")


def test_timeout_parameter_must_be_a_non_negative_integer() -> None:
    def timeout_of(value: object) -> int | None:
        return decode_request(json_body({"parameters": {"timeout": value}, "inputs": [
            {"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}]}), None).timeout_us

    assert timeout_of(2500) == 2500
    assert timeout_of(0) is None
    for bad in (-1, 1.5, True, "100"):
        with pytest.raises(InvalidInput) as info:
            timeout_of(bad)
        assert info.value.message == (
            "parameter 'timeout' must be a non-negative integer (microseconds)")


def _binary_x(size: object, shape: list[int], datatype: str = "FP32") -> dict:
    return {"inputs": [{"name": "x", "datatype": datatype, "shape": shape,
                        "parameters": {"binary_data_size": size}}]}


def test_binary_data_size_past_the_end_of_the_body() -> None:
    body, length = binary_body(_binary_x(16, [4]), b"\x00" * 8)
    with pytest.raises(InvalidInput) as info:
        decode_request(body, length)
    assert info.value.message == (
        "input 'x': binary_data_size 16 runs past the end of the body (8 bytes left)")


def test_second_binary_input_past_the_end_counts_bytes_left() -> None:
    body, length = binary_body({"inputs": [
        {"name": "a", "datatype": "INT8", "shape": [4], "parameters": {"binary_data_size": 4}},
        {"name": "b", "datatype": "INT8", "shape": [4], "parameters": {"binary_data_size": 4}},
    ]}, b"\x01" * 6)
    with pytest.raises(InvalidInput) as info:
        decode_request(body, length)
    assert info.value.message == (
        "input 'b': binary_data_size 4 runs past the end of the body (2 bytes left)")


def test_binary_size_not_matching_shape() -> None:
    body, length = binary_body(_binary_x(12, [2]), b"\x00" * 12)
    with pytest.raises(InvalidInput) as info:
        decode_request(body, length)
    assert info.value.message == (
        "input 'x': 12 bytes of binary data but shape [2] of FP32 needs 8")


@pytest.mark.parametrize("size", [-4, 1.5, "8", True])
def test_binary_data_size_must_be_a_non_negative_integer(size: object) -> None:
    body, length = binary_body(_binary_x(size, [2]), b"\x00" * 8)
    with pytest.raises(InvalidInput) as info:
        decode_request(body, length)
    assert info.value.message == "input 'x': binary_data_size must be a non-negative integer"


def test_unclaimed_trailing_bytes() -> None:
    body, length = binary_body(_binary_x(8, [2]), b"\x00" * 12)
    with pytest.raises(InvalidInput) as info:
        decode_request(body, length)
    assert info.value.message == (
        "4 bytes of binary data after the header are not claimed by any input's "
        "binary_data_size")


def test_trailing_bytes_after_a_json_only_header() -> None:
    body, length = binary_body({"inputs": [
        {"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}]}, b"junk")
    with pytest.raises(InvalidInput) as info:
        decode_request(body, length)
    assert info.value.message == (
        "4 bytes of binary data after the header are not claimed by any input's "
        "binary_data_size")


@pytest.mark.parametrize("declared", [10_000, -1])
def test_header_length_outside_the_body(declared: int) -> None:
    body, _ = binary_body(_binary_x(8, [2]), b"\x00" * 8)
    with pytest.raises(InvalidInput) as info:
        decode_request(body, str(declared))
    assert info.value.message == (
        f"Inference-Header-Content-Length is {declared} but the body has only {len(body)} bytes")


@pytest.mark.parametrize("declared", ["abc", "12.5", ""])
def test_header_length_not_an_integer(declared: str) -> None:
    body, _ = binary_body(_binary_x(8, [2]), b"\x00" * 8)
    with pytest.raises(InvalidInput) as info:
        decode_request(body, declared)
    assert info.value.message == (
        f"Inference-Header-Content-Length must be an integer, got {declared!r}")


def test_header_length_zero_is_unsupported() -> None:
    with pytest.raises(Unsupported) as info:
        decode_request(b"\x00" * 16, "0")
    assert info.value.message == (
        "raw binary requests (Inference-Header-Content-Length: 0) are not supported; "
        "send a JSON header first")
    assert info.value.status == 501


@pytest.mark.parametrize(("where", "value"), [
    ("request", "false"), ("request", 0), ("request", "true"),
    ("output", "false"), ("output", 1)])
def test_binary_data_flags_are_json_booleans(where: str, value) -> None:
    """The string "false" is truthy: taken as given it would turn binary output on."""
    header = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}]}
    if where == "request":
        header["parameters"] = {"binary_data_output": value}
        with pytest.raises(InvalidInput, match="parameter 'binary_data_output' must be true "
                                               "or false"):
            decode_request(json_body(header), None)  # refused before anything is computed
    else:
        header["outputs"] = [{"name": "y", "parameters": {"binary_data": value}}]
        with pytest.raises(InvalidInput, match="output 'y': 'binary_data' must be true or false"):
            decode_request(json_body(header), None)


def test_an_output_asked_for_twice_is_refused() -> None:
    header = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}],
              "outputs": [{"name": "y"}, {"name": "y"}]}
    with pytest.raises(InvalidInput, match="output 'y' is requested twice"):
        decode_request(json_body(header), None)


@pytest.mark.parametrize(("datatype", "value"), [("FP32", 1e39), ("FP16", 70000.0),
                                                 ("FP32", -3.5e38)])
def test_a_float_out_of_its_types_range_is_refused_not_made_infinite(datatype: str,
                                                                     value: float) -> None:
    header = {"inputs": [{"name": "x", "datatype": datatype, "shape": [2],
                          "data": [value, 0.0]}]}
    with pytest.raises(InvalidInput, match=f"input 'x': a value is out of range for {datatype}"):
        decode_request(json_body(header), None)


def test_floats_within_range_and_fp64_pass() -> None:
    header = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [2], "data": [1e39, 0.0]},
                         {"name": "y", "datatype": "FP32", "shape": [1], "data": [3.4e38]}]}
    request = decode_request(json_body(header), None)
    assert request.inputs[0].array[0] == 1e39
    assert np.isfinite(request.inputs[1].array).all()
