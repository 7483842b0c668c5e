"""Decoding infer requests and encoding responses, JSON and binary (Triton's extension).

A binary request is a JSON header of ``Inference-Header-Content-Length`` bytes followed by
raw little-endian, row-major tensors in input order, each sized by its ``binary_data_size``
parameter. Binary inputs are zero-copy views of the body.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import orjson

from serving.datatypes import (
    NUMPY_DTYPES,
    bf16_to_float32,
    datatype_of,
    deserialize_bytes,
    float32_to_bf16,
    serialize_bytes,
)
from serving.errors import InvalidInput, Unsupported

HEADER_LENGTH = "Inference-Header-Content-Length"
# Protocol parameters this server does not implement and would otherwise ignore, changing the
# answer: each is refused with why, unless it carries its "off" value (as tritonclient sends).
_SEQUENCE = "models here are stateless (no sequence batching)"
REQUEST_REFUSED = {"sequence_id": (_SEQUENCE, (0, "")), "sequence_start": (_SEQUENCE, (False,)),
                    "sequence_end": (_SEQUENCE, (False,)),
                    "priority": ("every request is queued in arrival order", (0,))}
_SHARED_MEMORY = ("shared_memory_region", "shared_memory_byte_size", "shared_memory_offset")
INPUT_REFUSED = {p: ("send the tensor in the body (JSON or binary_data_size)", ())
                  for p in _SHARED_MEMORY}
OUTPUT_REFUSED = {"classification": ("request the raw output and take its top-k", ()),
                   **{p: ("outputs come back in the body (JSON or binary_data)", ())
                      for p in _SHARED_MEMORY}}


def refuse_unimplemented(parameters: dict, refused: dict, where: str = "") -> None:
    for name, (why, off) in refused.items():
        if parameters.get(name) is None:
            continue
        value = parameters[name]
        if any(value == o and type(value) is type(o) for o in off):
            continue
        raise InvalidInput(f"{where}parameter '{name}' is not supported: {why}")


@dataclass(slots=True)
class InputTensor:
    name: str
    datatype: str
    shape: tuple[int, ...]
    array: np.ndarray


@dataclass(slots=True)
class RequestedOutput:
    name: str
    binary: bool | None


@dataclass(slots=True)
class InferRequest:
    id: str | None
    parameters: dict
    inputs: list[InputTensor]
    outputs: list[RequestedOutput] | None

    @property
    def binary_output(self) -> bool:
        value = self.parameters.get("binary_data_output", False)
        if not isinstance(value, bool):  # "false" is truthy: never guess
            raise InvalidInput("parameter 'binary_data_output' must be true or false")
        return value

    @property
    def use_cache(self) -> bool:
        """False when the request asks to bypass the prediction cache (``"cache": false``)."""
        value = self.parameters.get("cache", True)
        if not isinstance(value, bool):
            raise InvalidInput("parameter 'cache' must be true or false")
        return value

    @property
    def timeout_us(self) -> int | None:
        value = self.parameters.get("timeout")
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidInput("parameter 'timeout' must be a non-negative integer (microseconds)")
        return value or None


def _parse_header(raw: bytes | memoryview) -> dict:
    try:
        header = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"request body is not valid JSON: {exc}") from None
    if not isinstance(header, dict):
        raise InvalidInput("request body must be a JSON object with an 'inputs' list")
    return header


def _shape(name: str, value: object) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value):
        raise InvalidInput(f"input '{name}': 'shape' must be a list of non-negative integers")
    return tuple(value)


def _flatten(data: object) -> list:
    if not isinstance(data, list):
        return [data]
    flat: list = []
    for item in data:
        flat.extend(_flatten(item) if isinstance(item, list) else (item,))
    return flat


def _bytes_from_json(name: str, data: object, shape: tuple[int, ...]) -> np.ndarray:
    flat = _flatten(data)
    if not all(isinstance(v, str) for v in flat):
        raise InvalidInput(f"input '{name}': BYTES data must be strings")
    count = math.prod(shape)
    if len(flat) != count:
        raise InvalidInput(f"input '{name}': {len(flat)} values in 'data' but shape "
                           f"{list(shape)} needs {count}")
    array = np.empty(count, dtype=object)
    array[:] = flat
    return array.reshape(shape)


def _from_json(name: str, datatype: str, data: object, shape: tuple[int, ...]) -> np.ndarray:
    if datatype == "BYTES":
        return _bytes_from_json(name, data, shape)
    if datatype == "BF16":  # numbers, rounded to bfloat16 as torch rounds
        values = _from_json(name, "FP32", data, shape)
        converted = float32_to_bf16(values)
        if (np.isinf(bf16_to_float32(converted)) & np.isfinite(values)).any():
            raise InvalidInput(f"input '{name}': a value is out of range for BF16")
        return converted.reshape(shape)
    dtype = NUMPY_DTYPES[datatype]
    try:
        array = np.asarray(data)
    except ValueError:
        raise InvalidInput(f"input '{name}': 'data' is ragged; send a flat or "
                           "rectangular nested list") from None
    if array.dtype == object or array.dtype.kind in "USV":
        raise InvalidInput(f"input '{name}': 'data' must hold only {datatype} numbers")
    if dtype.kind == "u" and array.dtype.kind == "f" and array.size:
        # ints >= 2**63 beside smaller ones promote to float64: keep them exact
        exact = np.asarray(data, dtype=object)
        if all(isinstance(v, int) for v in exact.flat):
            array = exact
    if dtype.kind in "iu" and array.dtype.kind == "f" and array.size:
        raise InvalidInput(f"input '{name}': {datatype} data holds non-integer numbers")
    if dtype.kind in "iu" and array.size:
        info = np.iinfo(dtype)
        if array.min() < info.min or array.max() > info.max:
            raise InvalidInput(f"input '{name}': a value is out of range for {datatype}")
    if dtype.kind == "b" and array.dtype.kind != "b" and array.size:
        raise InvalidInput(f"input '{name}': BOOL data must be true/false")
    count = math.prod(shape)
    if array.size != count:
        raise InvalidInput(f"input '{name}': {array.size} values in 'data' but shape "
                           f"{list(shape)} needs {count}")
    try:
        with np.errstate(over="ignore"):  # checked below, where it matters
            converted = array.astype(dtype, copy=False).reshape(shape)
    except OverflowError:
        raise InvalidInput(f"input '{name}': a value is out of range for {datatype}") from None
    # A finite JSON number beyond FP32/FP16 would silently become ±inf.
    if (dtype.kind == "f" and converted.size and converted.dtype != array.dtype
            and (np.isinf(converted) & np.isfinite(array.reshape(shape))).any()):
        raise InvalidInput(f"input '{name}': a value is out of range for {datatype}")
    return converted


def decode_request(body: bytes, header_length: str | None) -> InferRequest:
    """Parse an infer request body; ``header_length`` is the binary header's value, if any."""
    if header_length is None:
        header, binary = _parse_header(body), memoryview(b"")
    else:
        try:
            length = int(header_length)
        except ValueError:
            raise InvalidInput(f"{HEADER_LENGTH} must be an integer, got {header_length!r}"
                               ) from None
        if length == 0:
            raise Unsupported(f"raw binary requests ({HEADER_LENGTH}: 0) are not supported; "
                              "send a JSON header first")
        if length < 0 or length > len(body):
            raise InvalidInput(f"{HEADER_LENGTH} is {length} but the body has only "
                               f"{len(body)} bytes")
        view = memoryview(body)
        header, binary = _parse_header(view[:length]), view[length:]

    raw_inputs = header.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise InvalidInput("request needs a non-empty 'inputs' list")
    inputs: list[InputTensor] = []
    seen: set[str] = set()
    offset = 0
    for raw in raw_inputs:
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise InvalidInput("each input must be an object with a string 'name'")
        name = raw["name"]
        if name in seen:
            raise InvalidInput(f"input '{name}' appears more than once")
        seen.add(name)
        datatype = raw.get("datatype")
        if datatype not in NUMPY_DTYPES:
            raise InvalidInput(f"input '{name}': datatype {datatype!r} is not supported; use one "
                               f"of {', '.join(NUMPY_DTYPES)}")
        shape = _shape(name, raw.get("shape"))
        parameters = raw.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise InvalidInput(f"input '{name}': 'parameters' must be an object")
        refuse_unimplemented(parameters, INPUT_REFUSED, f"input '{name}': ")
        size = parameters.get("binary_data_size")
        if size is None:
            if "data" not in raw:
                raise InvalidInput(f"input '{name}' has neither 'data' nor a "
                                   "'binary_data_size' parameter")
            array = _from_json(name, datatype, raw["data"], shape)
        else:
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise InvalidInput(f"input '{name}': binary_data_size must be a non-negative "
                                   "integer")
            if offset + size > len(binary):
                raise InvalidInput(f"input '{name}': binary_data_size {size} runs past the end "
                                   f"of the body ({len(binary) - offset} bytes left)")
            dtype = NUMPY_DTYPES[datatype]
            count = math.prod(shape)
            if datatype == "BYTES":
                array = deserialize_bytes(binary[offset:offset + size], count,
                                          name).reshape(shape)
            else:
                if size != count * dtype.itemsize:
                    raise InvalidInput(f"input '{name}': {size} bytes of binary data but shape "
                                       f"{list(shape)} of {datatype} needs "
                                       f"{count * dtype.itemsize}")
                array = np.frombuffer(binary, dtype, count, offset).reshape(shape)
            offset += size
        inputs.append(InputTensor(name, datatype, shape, array))
    if offset != len(binary):
        raise InvalidInput(f"{len(binary) - offset} bytes of binary data after the header are "
                           "not claimed by any input's binary_data_size")

    request_id = header.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInput("'id' must be a string")
    parameters = header.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise InvalidInput("'parameters' must be an object")
    refuse_unimplemented(parameters, REQUEST_REFUSED)
    request = InferRequest(request_id, parameters, inputs, _requested_outputs(header))
    _ = request.binary_output  # refuse a bad flag before the request is computed
    return request


def _requested_outputs(header: dict) -> list[RequestedOutput] | None:
    raw_outputs = header.get("outputs")
    if raw_outputs is None:
        return None
    if not isinstance(raw_outputs, list):
        raise InvalidInput("'outputs' must be a list")
    outputs = []
    for raw in raw_outputs:
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise InvalidInput("each requested output must be an object with a string 'name'")
        name = raw["name"]
        if any(out.name == name for out in outputs):
            raise InvalidInput(f"output '{name}' is requested twice")
        parameters = raw.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise InvalidInput(f"output '{name}': 'parameters' must be an object")
        refuse_unimplemented(parameters, OUTPUT_REFUSED, f"output '{name}': ")
        binary = parameters.get("binary_data")
        if binary is not None and not isinstance(binary, bool):
            raise InvalidInput(f"output '{name}': 'binary_data' must be true or false")
        outputs.append(RequestedOutput(name, binary))
    return outputs


def encode_response(model_name: str, model_version: str, request_id: str | None,
                    outputs: list[tuple[str, np.ndarray, bool]]) -> tuple[bytes, dict[str, str]]:
    """Encode ``(name, array, binary)`` outputs; returns the body and extra headers."""
    encoded = []
    chunks = []
    for name, array, binary in outputs:
        if array.dtype.byteorder == ">":  # the wire format is little-endian
            array = array.astype(array.dtype.newbyteorder("<"))
        datatype = datatype_of(array)
        entry: dict = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if binary:
            raw = (serialize_bytes(array) if datatype == "BYTES"
                   else np.ascontiguousarray(array).tobytes())
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        elif datatype == "BYTES":
            entry["data"] = [str(v) for v in array.reshape(-1)]
        else:
            flat = bf16_to_float32(array.reshape(-1)) if datatype == "BF16" else array.reshape(-1)
            if flat.dtype.kind == "f" and not np.isfinite(flat).all():
                raise InvalidInput(f"output '{name}' holds NaN or infinity, which JSON cannot "
                                   "carry: ask for it as a binary tensor (\"binary_data\": true)")
            entry["data"] = flat.astype(np.float32) if flat.dtype == np.float16 else flat
        encoded.append(entry)
    response: dict = {"model_name": model_name, "model_version": model_version}
    if request_id is not None:
        response["id"] = request_id
    response["outputs"] = encoded
    header = orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY)
    if not chunks:
        return header, {"content-type": "application/json"}
    return b"".join([header, *chunks]), {
        "content-type": "application/octet-stream",
        HEADER_LENGTH: str(len(header)),
    }
