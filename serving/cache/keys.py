"""Cache keys: model, version and a fast hash of exactly what the model would see.

The hash (XXH3-128) covers each input's name, datatype, shape and raw little-endian bytes, so
JSON and binary requests with the same values share a key, and no two different inputs can
share one by formatting accident (as ``str(array)``, which elides large arrays, would). The
served version, and a fingerprint of what computes it (the artifact's bytes, the backend, the
precision and the declared tensors), are part of every key: a new version, a replaced
``model.pt2`` or another precision never reads the entries of what came before, and nothing
needs to be invalidated by pattern (old entries expire with their TTL).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import xxhash

from serving.datatypes import serialize_bytes
from serving.repository.config import ModelConfig

# Bump when the key or value layout changes: entries written by older code are then unread.
KEY_SCHEMA = "p2"
_CHUNK = 8 << 20


@lru_cache(maxsize=4096)
def _tensor_header(name: str, datatype: str, shape: tuple[int, ...]) -> bytes:
    """Length-prefixed name, padded datatype and shape: the same few per model, so cached."""
    encoded = name.encode()
    return (struct.pack("<I", len(encoded)) + encoded + datatype.encode().ljust(8)
            + struct.pack(f"<I{len(shape)}q", len(shape), *shape))


def _contiguous(array: np.ndarray) -> np.ndarray | bytes:
    """What is hashed of an array: its raw bytes (for BYTES, serialized as on the wire: an
    object array's buffer holds pointers)."""
    if array.dtype == object:
        return serialize_bytes(array)
    return array if array.flags.c_contiguous else np.ascontiguousarray(array)


def request_digest(names: Sequence[str], datatypes: Sequence[str],
                   arrays: Sequence[np.ndarray]) -> bytes:
    """16 bytes identifying a request's inputs as a whole (the prediction log's input hash)."""
    return inputs_digest(zip(names, datatypes, arrays, strict=True))


def inputs_digest(inputs: Iterable[tuple[str, str, np.ndarray]]) -> bytes:
    """``request_digest`` of (name, datatype, array) triples."""
    hasher = xxhash.xxh3_128()
    update = hasher.update
    for name, datatype, array in inputs:
        update(_tensor_header(name, datatype, array.shape))
        update(_contiguous(array))
    return hasher.digest()


def row_digests(names: Sequence[str], datatypes: Sequence[str],
                arrays: Sequence[np.ndarray]) -> list[bytes]:
    """One digest per row (first dimension) of batched inputs: rows are independent samples."""
    headers = [_tensor_header(n, d, a.shape[1:])
               for n, d, a in zip(names, datatypes, arrays, strict=True)]
    arrays = [a if a.dtype == object else _contiguous(a) for a in arrays]
    digests = []
    for row in range(arrays[0].shape[0]):
        hasher = xxhash.xxh3_128()
        for header, array in zip(headers, arrays, strict=True):
            hasher.update(header)
            hasher.update(_contiguous(array[row:row + 1]) if array.dtype == object
                          else array[row])
        digests.append(hasher.digest())
    return digests


def model_fingerprint(artifact: Path, config: ModelConfig, backend: str) -> str:
    """16 hex digits naming what computes a version's predictions: the artifact's bytes, the
    backend that runs it, the precision, batching and every declared input and output. Read
    once per load (XXH3 streams at memory speed; the load reads the file anyway)."""
    hasher = xxhash.xxh3_64()
    with artifact.open("rb") as file:
        while chunk := file.read(_CHUNK):
            hasher.update(chunk)
    tensors = [(s.name, s.datatype, tuple(s.dims)) for s in (*config.inputs, *config.outputs)]
    hasher.update(repr((backend, config.precision, config.batching, len(config.inputs),
                        tensors)).encode())
    return hasher.hexdigest()


def cache_key(prefix: str, model: str, version: int, fingerprint: str, digest: bytes) -> bytes:
    """``<prefix>p2:<model>:<version>:<fingerprint>:<32 hex digits>``; parsed from the right,
    unambiguous."""
    return f"{prefix}{KEY_SCHEMA}:{model}:{version}:{fingerprint}:{digest.hex()}".encode()
