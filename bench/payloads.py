"""Infer request bodies for a model, built once from its metadata."""

from __future__ import annotations

import math

import numpy as np
import orjson

from serving.datatypes import NUMPY_DTYPES
from serving.protocol import HEADER_LENGTH


def random_inputs(metadata: dict, batch: int, seed: int = 0) -> list[tuple[dict, np.ndarray]]:
    rng = np.random.default_rng(seed)
    tensors = []
    for spec in metadata["inputs"]:
        shape = [batch if i == 0 and d == -1 else (1 if d == -1 else d)
                 for i, d in enumerate(spec["shape"])]
        dtype = NUMPY_DTYPES[spec["datatype"]]
        array = (rng.standard_normal(math.prod(shape)).astype(dtype).reshape(shape)
                 if dtype.kind == "f" else np.ones(shape, dtype=dtype))
        tensors.append((spec, array))
    return tensors


def build_body(metadata: dict, batch: int, payload: str, seed: int = 0
               ) -> tuple[bytes, dict[str, str]]:
    """A request body and headers: JSON tensors, or binary tensors with binary outputs."""
    tensors = random_inputs(metadata, batch, seed)
    if payload == "json":
        header = {"inputs": [{"name": s["name"], "datatype": s["datatype"],
                              "shape": list(a.shape), "data": a.reshape(-1).tolist()}
                             for s, a in tensors]}
        return orjson.dumps(header), {"content-type": "application/json"}
    header = {
        "inputs": [{"name": s["name"], "datatype": s["datatype"], "shape": list(a.shape),
                    "parameters": {"binary_data_size": a.nbytes}} for s, a in tensors],
        "parameters": {"binary_data_output": True},
    }
    head = orjson.dumps(header)
    body = b"".join([head, *(a.tobytes() for _, a in tensors)])
    return body, {"content-type": "application/octet-stream", HEADER_LENGTH: str(len(head))}
