"""What one request leaves in the prediction log: its status, input hash, output summary."""

from __future__ import annotations

import math

import numpy as np

from serving.cache.keys import inputs_digest
from serving.protocol import InferRequest

MAX_REQUEST_ID = 128  # characters kept of a client's request id
SUMMARY_ROWS = 64  # rows whose argmax a summary lists


def status_of(error: BaseException | None) -> str:
    """The log's status for a request that ended with ``error`` (None: it succeeded)."""
    if error is None:
        return "ok"
    # A ServingError (and a cancelled request) names its status; anything else is a bug.
    return getattr(error, "log_status", "error")


def input_hash(request: InferRequest) -> bytes:
    """The request's inputs as a whole, hashed as the cache hashes them (16 bytes)."""
    return inputs_digest((t.name, t.datatype, t.array) for t in request.inputs)


def _number(value: float) -> float | None:
    return value if math.isfinite(value) else None


def summarize_outputs(outputs: list[tuple[str, np.ndarray, bool]]) -> dict:
    """Per output: shape, min/max/mean and, for [rows, classes] scores, each row's argmax
    (JSON-ready)."""
    summary = {}
    for name, array, _ in outputs:
        entry: dict = {"shape": list(array.shape)}
        if array.size and array.dtype.kind in "fiub":
            values = array.astype(np.float64, copy=False)
            entry.update(min=_number(float(values.min())), max=_number(float(values.max())),
                         mean=_number(float(values.mean())))
            if array.ndim == 2 and array.dtype.kind == "f" and array.shape[0] <= SUMMARY_ROWS:
                entry["argmax"] = array.argmax(axis=1).tolist()
        summary[name] = entry
    return summary
