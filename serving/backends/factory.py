"""Pick a backend for a model and build it; unsupported combinations say how to fix them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from serving.backends.base import Backend
from serving.backends.cpu import CompileBackend, EagerBackend, Int8Backend
from serving.repository.config import ModelConfig


def tensorrt_available() -> bool:
    return torch.cuda.is_available() and importlib.util.find_spec("torch_tensorrt") is not None


def resolve_backend(config: ModelConfig) -> str:
    """The concrete backend ``config.backend`` means on this machine.

    ``auto``: int8 (on the CPU) when the config asks for int8 precision; else TensorRT when
    CUDA and torch-tensorrt are present and every tensor is one; else eager (torch.compile is
    opt-in: its first call compiles).
    """
    choice = config.backend
    texts = any(s.datatype == "BYTES" for s in (*config.inputs, *config.outputs))
    if choice == "auto":
        if config.precision == "int8":  # TensorRT would build it in FP32: int8 is the CPU's
            return "int8"
        if tensorrt_available() and not texts:  # TensorRT takes tensors, not List[str]
            return "tensorrt"
        return "eager"
    if choice == "tensorrt" and not tensorrt_available():
        raise ValueError(
            f"model '{config.name}' asks for backend tensorrt, but "
            + ("CUDA is not available" if not torch.cuda.is_available()
               else "torch-tensorrt is not installed (pip install 'aiinfra[gpu]')")
            + ": use backend: auto to fall back to the CPU"
        )
    if choice == "eager" and config.precision == "int8":
        return "int8"
    return choice


def device_for(kind: str) -> torch.device:
    """Where a backend of ``kind`` runs: the GPU when there is one (int8 runs on the CPU)."""
    return torch.device("cuda" if torch.cuda.is_available() and kind != "int8" else "cpu")


def create_backend(config: ModelConfig, artifact: Path, *, engine_cache_dir: Path) -> Backend:
    kind = resolve_backend(config)
    device = device_for(kind)
    if kind == "tensorrt":
        from serving.backends.tensorrt import TensorRTBackend  # noqa: PLC0415 - GPU only

        return TensorRTBackend(config, artifact, device, engine_cache_dir)
    if kind == "compile":
        return CompileBackend(config, artifact, device)
    if kind == "int8":
        return Int8Backend(config, artifact, torch.device("cpu"))
    return EagerBackend(config, artifact, device)
