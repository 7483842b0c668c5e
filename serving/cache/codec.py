"""Cached predictions as bytes, and the checks that turn anything unexpected into a miss.

Layout: ``AIC1`` · u32 header length · JSON header · raw outputs, back to back. The header
lists each output's datatype and shape (and for BYTES, serialized as on the wire, its size in
bytes) and an XXH3-64 checksum of the raw part. A value read
back is served only if every check passes: magic, header, datatypes, shapes against the
model's outputs, sizes and checksum. Arrays are read-only views of the value (no copy).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import orjson
import xxhash

from serving.datatypes import NUMPY_DTYPES, datatype_of, deserialize_bytes, serialize_bytes
from serving.errors import InvalidInput

MAGIC = b"AIC1"
_PREFIX = len(MAGIC) + 4


class InvalidValue(ValueError):
    """A cached value that is not a prediction this server wrote for this model."""


def encode_value(outputs: Sequence[np.ndarray]) -> bytes:
    raws = [serialize_bytes(a) if a.dtype == object else np.ascontiguousarray(a).tobytes()
            for a in outputs]
    payload = b"".join(raws)
    specs = [[datatype_of(a), list(a.shape), *([len(raw)] if a.dtype == object else [])]
             for a, raw in zip(outputs, raws, strict=True)]
    header = orjson.dumps({"o": specs, "h": xxhash.xxh3_64_intdigest(payload)})
    return b"".join((MAGIC, len(header).to_bytes(4, "little"), header, payload))


def _matches(shape: list, expected: Sequence[int]) -> bool:
    return len(shape) == len(expected) and all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 0 and e in (-1, s)
        for s, e in zip(shape, expected, strict=True))


def decode_value(value: bytes, expected_shapes: Sequence[Sequence[int]]
                 ) -> tuple[np.ndarray, ...]:
    """The outputs in ``value``; raises ``InvalidValue`` unless it is well formed and each
    output's shape matches ``expected_shapes`` (``-1`` matches any size)."""
    if len(value) < _PREFIX or value[:len(MAGIC)] != MAGIC:
        raise InvalidValue("not a cached prediction")
    length = int.from_bytes(value[len(MAGIC):_PREFIX], "little")
    if length > len(value) - _PREFIX:
        raise InvalidValue("header runs past the value")
    try:
        header = orjson.loads(value[_PREFIX:_PREFIX + length])
        specs, checksum = header["o"], header["h"]
    except (orjson.JSONDecodeError, TypeError, KeyError):
        raise InvalidValue("unreadable header") from None
    if not isinstance(specs, list) or len(specs) != len(expected_shapes):
        raise InvalidValue("wrong number of outputs")
    offset = _PREFIX + length
    if checksum != xxhash.xxh3_64_intdigest(memoryview(value)[offset:]):
        raise InvalidValue("checksum mismatch")
    arrays = []
    for spec, expected in zip(specs, expected_shapes, strict=True):
        texts = isinstance(spec, list) and spec[:1] == ["BYTES"]
        if (not isinstance(spec, list) or len(spec) != (3 if texts else 2)
                or spec[0] not in NUMPY_DTYPES
                or not isinstance(spec[1], list) or not _matches(spec[1], expected)):
            raise InvalidValue("output datatype or shape does not match the model")
        count = math.prod(spec[1])
        if texts:
            size = spec[2]
            if not isinstance(size, int) or size < 0 or offset + size > len(value):
                raise InvalidValue("outputs run past the value")
            try:
                array = deserialize_bytes(memoryview(value)[offset:offset + size], count, "")
            except InvalidInput:
                raise InvalidValue("unreadable BYTES output") from None
            arrays.append(array.reshape(spec[1]))
            offset += size
            continue
        dtype = NUMPY_DTYPES[spec[0]]
        if offset + count * dtype.itemsize > len(value):
            raise InvalidValue("outputs run past the value")
        arrays.append(np.frombuffer(value, dtype, count, offset).reshape(spec[1]))
        offset += count * dtype.itemsize
    if offset != len(value):
        raise InvalidValue("bytes left over after the outputs")
    return tuple(arrays)
