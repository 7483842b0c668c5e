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


Shape = tuple[int, ...]


def input_profiles(config: ModelConfig) -> dict[str, tuple[Shape, Shape, Shape]]:
    """Each input's (min, opt, max) shape: a batch dimension in front only when batching
    (without batching ``dims`` hold every dimension), variable dims from ``tensorrt.shapes``."""
    low, opt, high = profile(config)
    profiles = {}
    for spec in config.inputs:
        ranges = config.tensorrt.shapes.get(spec.name)
        if ranges is None:
            if -1 in spec.dims:
                raise ValueError(
                    f"input '{spec.name}' has variable dims {list(spec.dims)}: give "
                    f"tensorrt.shapes.{spec.name}.min/opt/max in config.yaml (an engine only "
                    "takes the shapes it was built for)")
            mins = opts = maxs = tuple(spec.dims)
        else:
            mins, opts, maxs = ranges.min, ranges.opt, ranges.max
        if config.batching:
            profiles[spec.name] = ((low, *mins), (opt, *opts), (high, *maxs))
        else:
            profiles[spec.name] = (tuple(mins), tuple(opts), tuple(maxs))
    return profiles


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
        module, self.engine_path, self.cache_hit = load_or_build(
            torch_tensorrt, config, artifact, device, Path(cache_dir),
            torch.cuda.get_device_name(device))
        super().__init__(config, module, device, _LOW_PRECISION.get(config.precision))


def load_or_build(trt, config: ModelConfig, artifact: Path, device: torch.device,
                  cache_dir: Path, gpu: str) -> tuple[torch.nn.Module, Path, bool]:
    """The engine's module, loaded from ``cache_dir`` when an engine built from the same
    artifact, profile, precision, torch-tensorrt version and GPU is there, else built and
    saved there; with the path and whether it was loaded."""
    key = engine_key(config, artifact, trt.__version__, gpu)
    path = cache_dir / f"{config.name}-{artifact.parent.name}-{key}.ep"
    if path.is_file():
        log.info("tensorrt engine cache hit", extra={"model": config.name, "path": str(path)})
        return trt.load(str(path)).module(), path, True
    return _build(trt, config, artifact, device, path), path, False


def _example_shape(low: Shape, opt: Shape, high: Shape) -> Shape:
    """An example for export at the profile's opt shape, but never 1 on a ranged axis:
    export specialises a dimension it traces at size 1."""
    return tuple(min(2, b) if o == 1 and a != b else o
                 for a, o, b in zip(low, opt, high, strict=True))


def _build(trt, config: ModelConfig, artifact: Path, device: torch.device, path: Path):
    """Build the engine and save it at ``path`` (written aside, then moved into place)."""
    profiles = input_profiles(config)
    dynamic = _dynamic(config, profiles)
    program = torch.export.load(str(artifact))
    reduced = _LOW_PRECISION.get(config.precision)
    inputs = []
    examples = []
    for spec in config.inputs:
        low, opt, high = profiles[spec.name]
        dtype = TORCH_DTYPES[spec.datatype]
        if reduced is not None and dtype.is_floating_point:
            dtype = reduced
        inputs.append(trt.Input(min_shape=low, opt_shape=opt, max_shape=high, dtype=dtype,
                                name=spec.name))
        examples.append(torch.zeros(_example_shape(low, opt, high), dtype=dtype,
                                    device=device))
    # Re-export on the GPU (and in FP16/BF16: torch-tensorrt >= 2.13 is strongly typed, so
    # precision follows the graph's dtypes) with every ranged dimension dynamic.
    module = program.module().to(device)
    if reduced is not None:
        module = module.to(reduced)
    program = torch.export.export(module, tuple(examples), dynamic_shapes=dynamic)
    options = {
        "arg_inputs": inputs,
        "device": device,
        "workspace_size": config.tensorrt.workspace_mib << 20,
        "cache_built_engines": True,
        "reuse_cached_engines": True,
        "engine_cache_dir": str(path.parent / "fragments"),
    }
    log.info("building tensorrt engine",
             extra={"model": config.name, "profile": {n: [list(p) for p in r]
                                                      for n, r in profiles.items()}})
    module = trt.dynamo.compile(program, **options)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    # The same dynamic shapes as the build, given explicitly: from Input objects alone, save
    # would give each input's batch axis a Dim of its own (torch-tensorrt 2.13's
    # get_dynamic_shapes), and trace at the opt shape, which may be 1 on a ranged axis.
    trt.save(module, str(partial), arg_inputs=examples, dynamic_shapes=dynamic)
    partial.replace(path)
    return module


def dynamic_axes(config: ModelConfig, profiles: dict[str, tuple[Shape, Shape, Shape]]
                 ) -> list[dict[int, tuple[str, int, int]]]:
    """Per input, its dynamic axes as (dim name, min, max): the batch axis (one name shared
    by every input) and each axis whose range is not a single size."""
    axes = []
    for spec in config.inputs:
        low, _, high = profiles[spec.name]
        found = {}
        for axis, (a, b) in enumerate(zip(low, high, strict=True)):
            if a != b:
                batch = config.batching and axis == 0
                found[axis] = ("batch" if batch else f"{spec.name}_{axis}", a, b)
        axes.append(found)
    return axes


def _dynamic(config: ModelConfig, profiles):
    axes = dynamic_axes(config, profiles)
    if not any(axes):
        return None
    dims: dict[str, torch.export.Dim] = {}
    return tuple({axis: dims.setdefault(name, torch.export.Dim(name, min=low, max=high))
                  for axis, (name, low, high) in found.items()} for found in axes)
