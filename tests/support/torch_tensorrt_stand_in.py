"""A CPU stand-in for the part of torch-tensorrt 2.13 that the tensorrt backend calls.

torch-tensorrt needs CUDA and TensorRT, so the CPU suite cannot import it. This stand-in lets
``TensorRTBackend._build`` run its real torch work (the re-export with dynamic shapes, the
save and load of the program) on the CPU, and holds every call to the 2.13 API:

- each keyword given to ``Input``, ``dynamo.compile``, ``save`` and ``load`` must be one that
  2.13 reads (``tests/serving/data/torch-tensorrt-2.13.0-api.json``, read from the tag's
  source). The real ``compile`` and ``save`` take ``**kwargs``, so a misspelt option would
  be dropped there without a word;
- ``compile`` checks that every ``Input`` matches the exported program (rank, dtype, and a
  range that holds the example shape), and returns the program's module in place of an
  engine;
- ``save`` follows 2.13's rules for a ``torch.fx.GraphModule``: explicit ``dynamic_shapes``
  take precedence; else, when every argument is an ``Input``, each input's ranged axes get a
  ``Dim`` of their own, named ``<name>_<axis>`` unless ``shared_dims`` names them (2.13
  ``torch_tensorrt/dynamo/_tracer.py``: ``get_dynamic_shapes``); then it exports with
  ``strict=False`` and saves an ExportedProgram.
"""

from __future__ import annotations

import inspect
import json
import types
from pathlib import Path
from typing import Any

import torch

API = json.loads((Path(__file__).parents[1] / "serving" / "data"
                  / "torch-tensorrt-2.13.0-api.json").read_text())
VERSION = API["source"]["tag"].lstrip("v")


def _named(function: str) -> set[str]:
    spec = API[function]
    return set(spec.get("positional", [])) | set(spec.get("keyword_only", []))


def _check_keywords(function: str, given: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise TypeError(f"{function} in torch-tensorrt {VERSION} reads no keyword "
                        f"{', '.join(unknown)}")


class Input:
    def __init__(self, **kwargs: Any) -> None:
        _check_keywords("torch_tensorrt.Input", kwargs,
                        set(API["torch_tensorrt.Input"]["keywords"]))
        self.min_shape = tuple(kwargs["min_shape"])
        self.opt_shape = tuple(kwargs["opt_shape"])
        self.max_shape = tuple(kwargs["max_shape"])
        if not len(self.min_shape) == len(self.opt_shape) == len(self.max_shape):
            raise ValueError("min_shape, opt_shape and max_shape differ in rank")
        self.dtype = kwargs.get("dtype", torch.float32)
        self.name = kwargs.get("name", "")
        self.shared_dims = dict(kwargs.get("shared_dims") or {})

    def example_tensor(self) -> torch.Tensor:
        return torch.zeros(self.opt_shape, dtype=self.dtype)


class StandIn(types.ModuleType):
    """``import torch_tensorrt`` resolves to one of these in the tests that install it."""

    def __init__(self) -> None:
        super().__init__("torch_tensorrt")
        self.__version__ = VERSION
        self.Input = Input
        self.dynamo = types.SimpleNamespace(compile=self._compile)
        self.compiled: list[dict[str, Any]] = []
        self.saved: list[dict[str, Any]] = []

    def _compile(self, exported_program: torch.export.ExportedProgram, inputs=None,
                 **kwargs: Any) -> torch.fx.GraphModule:
        _check_keywords("torch_tensorrt.dynamo.compile", kwargs,
                        _named("torch_tensorrt.dynamo.compile"))
        specs = kwargs.get("arg_inputs") or inputs
        placeholders = [node.meta["val"] for node in exported_program.graph.nodes
                        if node.op == "placeholder"
                        and node.name in exported_program.graph_signature.user_inputs]
        if len(specs) != len(placeholders):
            raise ValueError(f"{len(specs)} Input(s) for a program of {len(placeholders)}")
        for spec, value in zip(specs, placeholders, strict=True):
            if len(spec.opt_shape) != value.dim():
                raise ValueError(f"Input of rank {len(spec.opt_shape)} for a tensor of rank "
                                 f"{value.dim()}")
            if spec.dtype != value.dtype:
                raise ValueError(f"Input of {spec.dtype} for a {value.dtype} tensor")
        self.compiled.append({"inputs": list(specs), **kwargs})
        return exported_program.module()

    def save(self, module: torch.fx.GraphModule, file_path: str = "", **kwargs: Any) -> None:
        _check_keywords("torch_tensorrt.save", kwargs, _named("torch_tensorrt.save"))
        arg_inputs = kwargs.get("arg_inputs") or kwargs.get("inputs") or ()
        dynamic_shapes = kwargs.get("dynamic_shapes")
        if dynamic_shapes is None and arg_inputs and all(isinstance(a, Input)
                                                         for a in arg_inputs):
            dynamic_shapes = self._inferred(module, arg_inputs)
        args = tuple(a.example_tensor() if isinstance(a, Input) else a for a in arg_inputs)
        program = torch.export.export(module, args, dynamic_shapes=dynamic_shapes,
                                      strict=False)
        torch.export.save(program, file_path)
        self.saved.append({"path": file_path, **kwargs})

    @staticmethod
    def _inferred(module: torch.fx.GraphModule, arg_inputs) -> dict[str, dict]:
        shared: dict[str, torch.export.Dim] = {}
        names = list(inspect.signature(module.forward).parameters)
        shapes = {}
        for spec, argument in zip(arg_inputs, names, strict=False):
            axes = {}
            for axis, (low, opt, high) in enumerate(zip(spec.min_shape, spec.opt_shape,
                                                        spec.max_shape, strict=True)):
                if low == opt == high:
                    continue
                if axis in spec.shared_dims:
                    name = spec.shared_dims[axis]
                    axes[axis] = shared.setdefault(name, torch.export.Dim(name, min=low,
                                                                          max=high))
                else:
                    axes[axis] = torch.export.Dim(f"{spec.name}_{axis}", min=low, max=high)
            shapes[argument] = axes
        return shapes

    def load(self, file_path: str = "", **kwargs: Any) -> torch.export.ExportedProgram:
        _check_keywords("torch_tensorrt.load", kwargs, _named("torch_tensorrt.load"))
        return torch.export.load(file_path)
