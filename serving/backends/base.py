"""What every backend shares: loading an artifact, moving tensors, mapping outputs by name."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from serving.datatypes import (
    BF16_DTYPE,
    NUMPY_DTYPES,
    TORCH_DTYPES,
    bf16_array,
    bf16_tensor,
    float32_to_bf16,
)
from serving.repository.config import ModelConfig


def load_module(artifact: Path) -> torch.nn.Module:
    """A ``torch.export`` program (``.pt2``) or a TorchScript module (``.pt``/``.ts``), on CPU."""
    if artifact.suffix == ".pt2":
        return torch.export.load(str(artifact)).module()
    module = torch.jit.load(str(artifact), map_location="cpu")
    return module.eval()


class Backend:
    """Runs ``forward`` on numpy inputs (in config order) and returns outputs in config order.

    Subclasses set ``name`` and build ``self._fn``; the call is made under inference mode on
    ``self.device`` and the outputs come back as numpy arrays of the declared datatypes.
    """

    name = "base"

    def __init__(self, config: ModelConfig, fn: Callable[..., object], device: torch.device,
                 input_dtype: torch.dtype | None = None) -> None:
        self.config = config
        self.device = device
        self._fn = fn
        self._input_dtype = input_dtype
        # None: a BYTES tensor, which the model takes and returns as a flat List[str].
        self._input_torch = [TORCH_DTYPES.get(s.datatype) for s in config.inputs]
        self._output_numpy = [NUMPY_DTYPES[s.datatype] for s in config.outputs]
        self._output_torch = [TORCH_DTYPES.get(s.datatype) for s in config.outputs]
        # Seconds of one warm forward per batch size, measured at warm-up (the batcher's
        # first service times: admission can judge before the first batch has run).
        self.warmup_s: dict[int, float] = {}

    def describe(self) -> str:
        return f"{self.name} on {self.device}"

    def _to_tensor(self, array: np.ndarray, dtype: torch.dtype | None) -> torch.Tensor | list:
        if dtype is None:
            return array.reshape(-1).tolist()
        tensor = bf16_tensor(array) if array.dtype == BF16_DTYPE else torch.from_numpy(array)
        if tensor.dtype != dtype:
            tensor = tensor.to(dtype)
        if self._input_dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(self._input_dtype)
        return tensor.to(self.device, non_blocking=True) if self.device.type != "cpu" else tensor

    def forward(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        tensors = [self._to_tensor(a, d) for a, d in zip(inputs, self._input_torch, strict=True)]
        with torch.inference_mode():
            result = self._fn(*tensors)
        return self._outputs(result, inputs[0].shape[0] if self.config.batching else None)

    def _outputs(self, result: object, rows: int | None = None) -> list[np.ndarray]:
        specs = self.config.outputs
        if isinstance(result, torch.Tensor):
            values = [result]
        elif isinstance(result, dict):
            missing = [s.name for s in specs if s.name not in result]
            if missing:
                raise RuntimeError(f"model returned no output named {', '.join(missing)}")
            values = [result[s.name] for s in specs]
        elif isinstance(result, list | tuple):
            values = list(result)
        else:
            raise RuntimeError(f"model returned {type(result).__name__}, expected tensor(s)")
        if len(values) != len(specs):
            raise RuntimeError(
                f"model returned {len(values)} output(s) but config.yaml declares {len(specs)}"
            )
        arrays = []
        for spec, tensor, dtype, torch_dtype in zip(specs, values, self._output_numpy,
                                                    self._output_torch, strict=True):
            if torch_dtype is None:
                arrays.append(self._texts(spec, tensor, rows))
                continue
            if not isinstance(tensor, torch.Tensor):
                raise RuntimeError(f"output '{spec.name}' is a {type(tensor).__name__}, "
                                   "not a tensor")
            want, shape = self.config.full_shape(spec), list(tensor.shape)
            if len(shape) != len(want) or any(
                    w not in (-1, s) for w, s in zip(want, shape, strict=True)):
                raise RuntimeError(f"output '{spec.name}' has shape {shape}; config.yaml "
                                   f"declares {want}")
            # Cast in torch: numpy has no bfloat16, and .numpy() refuses it.
            if tensor.dtype != torch_dtype:
                tensor = tensor.to(torch_dtype)
            if torch_dtype == torch.bfloat16:
                arrays.append(bf16_array(tensor))
                continue
            array = tensor.detach().cpu().numpy()
            arrays.append(array if array.dtype == dtype else array.astype(dtype))
        return arrays

    def _texts(self, spec, value: object, rows: int | None) -> np.ndarray:
        """A BYTES output: the model's flat List[str], shaped by the declared dims."""
        shape = [rows, *spec.dims] if rows is not None else list(spec.dims)
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise RuntimeError(f"output '{spec.name}' is a {type(value).__name__}, not a list "
                               "of str (BYTES)")
        if len(value) != math.prod(shape):
            raise RuntimeError(f"output '{spec.name}' has {len(value)} elements; config.yaml "
                               f"declares {shape}")
        array = np.empty(len(value), dtype=object)
        array[:] = list(value)
        return array.reshape(shape)


def example_inputs(config: ModelConfig, batch_size: int) -> list[np.ndarray]:
    """Deterministic inputs for warm-up and benchmarks. A variable dim takes the opt size of
    its ``tensorrt.shapes`` range when the config gives one (an engine takes only the shapes
    it was built for), else 1."""
    rng = np.random.default_rng(0)
    arrays = []
    for spec in config.inputs:
        ranged = config.tensorrt.shapes.get(spec.name)
        dims = [(ranged.opt[axis] if ranged is not None else 1) if d == -1 else d
                for axis, d in enumerate(spec.dims)]
        shape = [batch_size, *dims] if config.batching else dims
        dtype = NUMPY_DTYPES[spec.datatype]
        if spec.datatype == "BYTES":
            arrays.append(np.full(shape, "", dtype=object))
        elif spec.datatype == "BF16":
            arrays.append(float32_to_bf16(rng.standard_normal(shape)).reshape(shape))
        elif dtype.kind == "f":
            arrays.append(rng.standard_normal(shape).astype(dtype))
        elif dtype.kind == "b":
            arrays.append(np.zeros(shape, dtype=dtype))
        else:
            arrays.append(np.ones(shape, dtype=dtype))
    return arrays
