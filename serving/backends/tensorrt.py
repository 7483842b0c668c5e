"""TensorRT through torch-tensorrt's dynamo path, with engines kept on disk across restarts.

Imported only when the tensorrt backend is chosen, so CPU installs never import
``torch_tensorrt``. The saved program's file name is a hash of everything that shapes the
engine (artifact bytes, input profile, precision, torch-tensorrt version, GPU), so a restart
loads the engine instead of rebuilding it, and any change builds a new one.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import torch

from serving.backends.base import Backend
from serving.datatypes import TORCH_DTYPES
from serving.repository.config import ModelConfig

# Precisions that run the graph in a reduced float type (TensorRT follows its dtypes).
_LOW_PRECISION = {"fp16": torch.float16, "bf16": torch.bfloat16}

log = logging.getLogger(__name__)


def profile(config: ModelConfig) -> tuple[int, int, int]:
    """The (min, opt, max) batch sizes of the optimisation profile.

    ``opt`` is at least 2 whenever the range allows: export specialises a dimension traced
    at size 1, and torch-tensorrt rejects ``opt == min`` on dynamic dimensions.
    """
    top = max(config.max_batch_size, 1)
    if top == 1:
        return 1, 1, 1
    opt = config.tensorrt.opt_batch_size or top // 2
    return 1, min(max(opt, 2), top), top


def engine_key(config: ModelConfig, artifact: Path, trt_version: str, gpu: str) -> str:
    digest = hashlib.sha256()
    with artifact.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    shaping = config.model_dump(include={"inputs", "outputs", "precision", "max_batch_size",
                                         "tensorrt"})
    digest.update(repr((shaping, profile(config), trt_version, gpu)).encode())
    return digest.hexdigest()[:20]


class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(self, config: ModelConfig, artifact: Path, device: torch.device,
                 cache_dir: Path) -> None:
        import torch_tensorrt  # noqa: PLC0415 - only on GPU installs

        if device.type != "cuda":
            raise ValueError("backend tensorrt needs a CUDA device")
        if artifact.suffix != ".pt2":
            raise ValueError("backend tensorrt needs a torch.export artifact (model.pt2)")
        gpu = torch.cuda.get_device_name(device)
        key = engine_key(config, artifact, torch_tensorrt.__version__, gpu)
        path = Path(cache_dir) / f"{config.name}-{artifact.parent.name}-{key}.ep"
        self.cache_hit = path.is_file()
        if self.cache_hit:
            log.info("tensorrt engine cache hit", extra={"model": config.name, "path": str(path)})
            module = torch_tensorrt.load(str(path)).module()
        else:
            module = self._build(torch_tensorrt, config, artifact, device, path)
        super().__init__(config, module, device, _LOW_PRECISION.get(config.precision))

    @staticmethod
    def _build(trt, config: ModelConfig, artifact: Path, device: torch.device, path: Path):
        low, opt, high = profile(config)
        program = torch.export.load(str(artifact))
        reduced = _LOW_PRECISION.get(config.precision)
        inputs = []
        examples = []
        for spec in config.inputs:
            dims = [1 if d == -1 else d for d in spec.dims]
            dtype = TORCH_DTYPES[spec.datatype]
            if reduced is not None and dtype.is_floating_point:
                dtype = reduced
            inputs.append(trt.Input(min_shape=(low, *dims), opt_shape=(opt, *dims),
                                    max_shape=(high, *dims), dtype=dtype))
            examples.append(torch.zeros((opt, *dims), dtype=dtype, device=device))
        # Re-export on the GPU (and in FP16: torch-tensorrt ≥ 2.13 is strongly typed, so
        # precision follows the graph's dtypes) with the batch range as a dynamic dimension.
        module = program.module().to(device)
        if reduced is not None:
            module = module.to(reduced)
        dynamic = _dynamic(config, low, high) if high > 1 else None
        program = torch.export.export(module, tuple(examples), dynamic_shapes=dynamic)
        options = {
            "arg_inputs": inputs,
            "workspace_size": config.tensorrt.workspace_mib << 20,
            "cache_built_engines": True,
            "reuse_cached_engines": True,
            "engine_cache_dir": str(path.parent / "fragments"),
        }
        log.info("building tensorrt engine",
                 extra={"model": config.name, "profile": [low, opt, high]})
        module = trt.dynamo.compile(program, **options)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        # Input objects (not example tensors) keep the min/opt/max batch range in the file.
        trt.save(module, str(partial), arg_inputs=inputs)
        partial.replace(path)
        return module


def _dynamic(config: ModelConfig, low: int, high: int):
    batch = torch.export.Dim("batch", min=low, max=high)
    return tuple({0: batch} for _ in config.inputs)
