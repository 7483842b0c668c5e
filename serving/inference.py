"""The data plane shared by every wire format: validate against the model, batch, select outputs."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from serving import tracing
from serving.batcher import BatchStats
from serving.cache import PredictionCache
from serving.errors import InvalidInput
from serving.protocol import InferRequest
from serving.registry import LoadedModel
from serving.repository import ModelConfig

log = logging.getLogger(__name__)


def bind_inputs(config: ModelConfig, request: InferRequest) -> list[np.ndarray]:
    """The request's arrays in the model's input order, checked against ``config``."""
    given = {tensor.name: tensor for tensor in request.inputs}
    expected = [spec.name for spec in config.inputs]
    unknown = sorted(set(given) - set(expected))
    if unknown:
        raise InvalidInput(f"model '{config.name}' has no input named "
                           f"{', '.join(repr(u) for u in unknown)}; its inputs: "
                           f"{', '.join(expected)}")
    missing = [name for name in expected if name not in given]
    if missing:
        raise InvalidInput(f"model '{config.name}' needs input(s) {', '.join(missing)}")
    arrays = []
    rows = None
    for spec in config.inputs:
        tensor = given[spec.name]
        if tensor.datatype != spec.datatype:
            raise InvalidInput(f"input '{spec.name}' has datatype {tensor.datatype} but model "
                               f"'{config.name}' expects {spec.datatype}")
        want = config.full_shape(spec)
        shape = tensor.shape
        if len(shape) != len(want) or any(
                w not in (-1, s) for w, s in zip(want, shape, strict=True)):
            raise InvalidInput(f"input '{spec.name}' has shape {list(shape)} but model "
                               f"'{config.name}' expects {want}")
        ranged = config.tensorrt.shapes.get(spec.name)
        if ranged is not None:
            dims = shape[1:] if config.batching else shape
            if not all(a <= d <= b for a, d, b in zip(ranged.min, dims, ranged.max,
                                                      strict=True)):
                raise InvalidInput(f"input '{spec.name}' has shape {list(shape)} but model "
                                   f"'{config.name}' takes dims from {list(ranged.min)} to "
                                   f"{list(ranged.max)} (tensorrt.shapes.{spec.name})")
        if config.batching:
            if not 1 <= shape[0] <= config.max_batch_size:
                raise InvalidInput(f"input '{spec.name}' carries a batch of {shape[0]}; model "
                                   f"'{config.name}' takes 1 to {config.max_batch_size}")
            if rows is not None and shape[0] != rows:
                raise InvalidInput("all inputs must carry the same batch size")
            rows = shape[0]
        arrays.append(tensor.array)
    return arrays


def select_outputs(config: ModelConfig, request: InferRequest, arrays: list[np.ndarray]
                   ) -> list[tuple[str, np.ndarray, bool]]:
    """Pair outputs with names and wire format; ``outputs`` in the request picks and orders."""
    by_name = {spec.name: array for spec, array in zip(config.outputs, arrays, strict=True)}
    default_binary = request.binary_output
    if request.outputs is None:
        return [(name, array, default_binary) for name, array in by_name.items()]
    return [(out.name, by_name[out.name], default_binary if out.binary is None else out.binary)
            for out in request.outputs]


def check_requested_outputs(config: ModelConfig, request: InferRequest) -> None:
    if request.outputs is None:
        return
    names = {spec.name for spec in config.outputs}
    unknown = [o.name for o in request.outputs if o.name not in names]
    if unknown:
        raise InvalidInput(f"model '{config.name}' has no output named "
                           f"{', '.join(repr(u) for u in unknown)}; its outputs: "
                           f"{', '.join(spec.name for spec in config.outputs)}")


def effective_timeout_s(config: ModelConfig, request: InferRequest) -> float | None:
    """The request's timeout: its ``timeout`` parameter (µs) may only lower the default."""
    default = config.default_timeout_ms / 1000.0 or None
    asked_us = request.timeout_us
    asked = asked_us / 1e6 if asked_us else None
    if default is None:
        return asked
    return min(default, asked) if asked is not None else default


@dataclass(slots=True)
class InferenceResult:
    """One request's outputs and how they were made (for the response and the log)."""

    version: int
    outputs: list[tuple[str, np.ndarray, bool]]
    rows: int
    cached_rows: int = 0
    batch: BatchStats = field(default_factory=BatchStats)


def _take_rows(arrays: list[np.ndarray], rows: list[int]) -> list[np.ndarray]:
    if len(rows) == 1:
        return [a[rows[0]:rows[0] + 1] for a in arrays]
    return [np.take(a, rows, axis=0) for a in arrays]


async def run_inference(model: LoadedModel, version: int | None, request: InferRequest,
                        cache: PredictionCache | None = None,
                        trace: tracing.RequestTrace | None = None, *,
                        arrived: float | None = None) -> InferenceResult:
    """Validate, look the rows up in the cache (if the model opts in), batch the rest.

    ``arrived`` is when the request reached the server (``time.monotonic()``): its timeout
    counts from then."""
    config = model.config
    arrays = bind_inputs(config, request)
    check_requested_outputs(config, request)
    batcher = model.batcher(version)
    served = version if version is not None else model.latest
    timeout_s = effective_timeout_s(config, request)
    result = InferenceResult(served, [], arrays[0].shape[0] if config.batching else 1)
    if trace is not None:
        result.batch.trace = trace.context
    lookup = None
    if request.use_cache and config.cache.enabled and cache is not None:
        looked_up = time.perf_counter()
        try:
            lookup = await cache.lookup(model.name, served, model.fingerprints[served], config,
                                        arrays)
        except Exception:  # noqa: BLE001 - a cache fault is a miss, never a failed request
            log.exception("cache look-up failed", extra={"model": model.name})
        else:
            batcher.stats.stages["cache_miss" if lookup.missing else "cache_hit"].add(
                time.perf_counter() - looked_up)
    if lookup is None:
        outputs = await batcher.infer(arrays, timeout_s, result.batch, arrived=arrived)
        result.outputs = select_outputs(config, request, outputs)
        return result
    missing = lookup.missing
    computed = None
    if missing:
        wanted = arrays if len(missing) == len(lookup.found) else _take_rows(arrays, missing)
        computed = await batcher.infer(wanted, timeout_s, result.batch, arrived=arrived)
        try:
            cache.store(config, lookup, computed)
        except Exception:  # noqa: BLE001 - after the forward nothing may fail the request
            log.exception("cache store failed", extra={"model": model.name})
    result.cached_rows = lookup.hits
    result.outputs = select_outputs(config, request, cache.assemble(lookup, computed))
    return result
