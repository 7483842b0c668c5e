"""``ModelInferRequest`` to the data plane's ``InferRequest``, and outputs to
``ModelInferResponse``: the same checks, and the same messages, as the HTTP codec.

Inputs come as ``raw_input_contents`` (one little-endian, row-major buffer per input, in
input order: what tritonclient sends) or as typed ``contents``; never both for one request.
Outputs always leave as ``raw_output_contents``, as Triton's gRPC front end answers.
"""

from __future__ import annotations

import math

import numpy as np

from serving.datatypes import NUMPY_DTYPES, datatype_of, deserialize_bytes, serialize_bytes
from serving.errors import InvalidInput
from serving.protocol import InferRequest, InputTensor, RequestedOutput
from serving.protocol.codec import (
    INPUT_REFUSED,
    OUTPUT_REFUSED,
    REQUEST_REFUSED,
    refuse_unimplemented,
)
from serving.rpc.messages import ModelInferResponse

# The typed field of each datatype (FP16 and BF16 have none: raw only).
CONTENTS_FIELD = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents",
    "INT32": "int_contents", "INT64": "int64_contents", "UINT8": "uint_contents",
    "UINT16": "uint_contents", "UINT32": "uint_contents", "UINT64": "uint64_contents",
    "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}
_ALL_FIELDS = tuple(sorted(set(CONTENTS_FIELD.values())))


def parameters_of(parameters) -> dict:
    """A protobuf ``map<string, InferParameter>`` as a plain dict of Python values."""
    if not parameters:
        return {}
    out = {}
    for key, value in parameters.items():
        kind = value.WhichOneof("parameter_choice")
        out[key] = getattr(value, kind) if kind is not None else None
    return out


def decode_infer_request(message, deadline_us: int | None = None) -> InferRequest:
    """The request ``message`` carries; ``deadline_us`` (the call's deadline, from now) also
    bounds its wait in the queue, as its ``timeout`` parameter does."""
    if not message.inputs:
        raise InvalidInput("request needs a non-empty 'inputs' list")
    raw = message.raw_input_contents
    if raw and len(raw) != len(message.inputs):
        raise InvalidInput(f"raw_input_contents holds {len(raw)} tensors but the request has "
                           f"{len(message.inputs)} inputs: send one per input, in input order")
    inputs: list[InputTensor] = []
    seen: set[str] = set()
    for index, tensor in enumerate(message.inputs):
        name = tensor.name
        if name in seen:
            raise InvalidInput(f"input '{name}' appears more than once")
        seen.add(name)
        datatype = tensor.datatype
        if datatype not in NUMPY_DTYPES:
            raise InvalidInput(f"input '{name}': datatype {datatype!r} is not supported; use one "
                               f"of {', '.join(NUMPY_DTYPES)}")
        shape = tuple(tensor.shape)
        if any(d < 0 for d in shape):
            raise InvalidInput(f"input '{name}': 'shape' must be a list of non-negative integers")
        refuse_unimplemented(parameters_of(tensor.parameters), INPUT_REFUSED,
                              f"input '{name}': ")
        has_contents = tensor.HasField("contents")
        if raw:
            if has_contents:
                raise InvalidInput(f"input '{name}' has both typed contents and "
                                   "raw_input_contents: send one or the other")
            array = _from_raw(name, datatype, shape, raw[index])
        elif has_contents:
            array = _from_contents(name, datatype, shape, tensor.contents)
        else:
            raise InvalidInput(f"input '{name}' has neither contents nor raw_input_contents")
        inputs.append(InputTensor(name, datatype, shape, array))

    parameters = parameters_of(message.parameters)
    refuse_unimplemented(parameters, REQUEST_REFUSED)
    if deadline_us is not None:  # the call's deadline bounds its queueing like `timeout`
        deadline_us = max(1, deadline_us)
        given = parameters.get("timeout")
        if given is None or given == 0:
            parameters["timeout"] = deadline_us
        elif type(given) is int and given > 0:
            parameters["timeout"] = min(given, deadline_us)
    outputs = None
    if message.outputs:
        outputs = []
        for requested in message.outputs:
            name = requested.name
            if any(out.name == name for out in outputs):
                raise InvalidInput(f"output '{name}' is requested twice")
            refuse_unimplemented(parameters_of(requested.parameters), OUTPUT_REFUSED,
                                  f"output '{name}': ")
            outputs.append(RequestedOutput(name, True))
    request = InferRequest(message.id or None, parameters, inputs, outputs)
    _ = request.timeout_us, request.use_cache  # refuse bad values before computing anything
    return request


def _from_raw(name: str, datatype: str, shape: tuple[int, ...], buffer: bytes) -> np.ndarray:
    count = math.prod(shape)
    if datatype == "BYTES":
        return deserialize_bytes(memoryview(buffer), count, name).reshape(shape)
    dtype = NUMPY_DTYPES[datatype]
    if len(buffer) != count * dtype.itemsize:
        raise InvalidInput(f"input '{name}': {len(buffer)} bytes of raw_input_contents but "
                           f"shape {list(shape)} of {datatype} needs {count * dtype.itemsize}")
    return np.frombuffer(buffer, dtype, count).reshape(shape)


def _from_contents(name: str, datatype: str, shape: tuple[int, ...], contents) -> np.ndarray:
    field = CONTENTS_FIELD.get(datatype)
    if field is None:
        raise InvalidInput(f"input '{name}': {datatype} has no typed contents field; send it "
                           "in raw_input_contents")
    others = [f for f in _ALL_FIELDS if f != field and len(getattr(contents, f))]
    if others:
        raise InvalidInput(f"input '{name}' is {datatype}, whose values go in '{field}', but "
                           f"the request fills '{others[0]}'")
    values = getattr(contents, field)
    count = math.prod(shape)
    if len(values) != count:
        raise InvalidInput(f"input '{name}': {len(values)} values in '{field}' but shape "
                           f"{list(shape)} needs {count}")
    if datatype == "BYTES":
        array = np.empty(count, dtype=object)
        try:
            array[:] = [bytes(v).decode() for v in values]
        except UnicodeDecodeError:
            raise InvalidInput(f"input '{name}': a BYTES element is not UTF-8 text") from None
        return array.reshape(shape)
    dtype = NUMPY_DTYPES[datatype]
    wide = np.asarray(values)
    if dtype.kind in "iu" and wide.size and dtype.itemsize < wide.dtype.itemsize:
        info = np.iinfo(dtype)  # int_contents / uint_contents are 32-bit for every width
        if wide.min() < info.min or wide.max() > info.max:
            raise InvalidInput(f"input '{name}': a value is out of range for {datatype}")
    return wide.astype(dtype, copy=False).reshape(shape)


def encode_infer_response(model_name: str, model_version: str, request_id: str | None,
                          outputs: list[tuple[str, np.ndarray, bool]]):
    response = ModelInferResponse(model_name=model_name, model_version=model_version,
                                  id=request_id or "")
    for name, array, _binary in outputs:
        if array.dtype.byteorder == ">":  # the wire format is little-endian
            array = array.astype(array.dtype.newbyteorder("<"))
        datatype = datatype_of(array)
        tensor = response.outputs.add(name=name, datatype=datatype)
        tensor.shape.extend(array.shape)
        response.raw_output_contents.append(
            serialize_bytes(array) if datatype == "BYTES"
            else np.ascontiguousarray(array).tobytes())
    return response

