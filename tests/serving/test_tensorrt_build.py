"""The TensorRT build path on the CPU: everything but the engine itself.

``TensorRTBackend`` re-exports the artifact with every ranged dimension dynamic, hands it to
``torch_tensorrt.dynamo.compile`` with a min/opt/max profile per input, and saves the result
so that a restart loads it. Here torch-tensorrt is the 2.13 stand-in of
``tests/support/torch_tensorrt_stand_in.py`` (keywords checked against the 2.13 source, 2.13's
save rules), so the torch work runs for real: export, save, load, and the outputs of what was
saved, against the model's own. The engine build itself is checked on a GPU
(``tests/serving/test_tensorrt_gpu.py``, run by ``bench/gpu_check.sh``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from serving.backends import tensorrt
from serving.backends.base import example_inputs
from serving.repository import load_model_config
from serving.repository.config import ModelConfig
from tests.support.torch_tensorrt_stand_in import StandIn


class Masked(nn.Module):
    """Two inputs that share the batch axis."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return (x * mask).sum(dim=1, keepdim=True)


class Small(nn.Module):
    """A convolution, batch norm and a linear head: resnet's kinds of layers, small."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.norm = nn.BatchNorm2d(4)
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.relu(self.norm(self.conv(x))).mean(dim=(2, 3))
        return self.head(pooled)


class Mean(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=-1, keepdim=True)


def _model(tmp_path: Path, module: nn.Module, examples: tuple[torch.Tensor, ...],
           dynamic_shapes, config: dict) -> tuple[ModelConfig, Path]:
    root = tmp_path / "repository" / "m"
    artifact = root / "1" / "model.pt2"
    artifact.parent.mkdir(parents=True)
    program = torch.export.export(module.eval(), examples, dynamic_shapes=dynamic_shapes)
    torch.export.save(program, str(artifact))
    (root / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return load_model_config(root / "config.yaml", model_name="m"), artifact


def _mean_model(tmp_path: Path) -> tuple[ModelConfig, Path]:
    """Mean over FP32 [4], batching up to 8, on backend tensorrt."""
    batch = torch.export.Dim("batch", min=1, max=8)
    return _model(tmp_path, Mean(), (torch.randn(2, 4),), ({0: batch},),
                  {"backend": "tensorrt", "max_batch_size": 8,
                   "inputs": [{"name": "x", "datatype": "FP32", "dims": [4]}],
                   "outputs": [{"name": "y", "datatype": "FP32", "dims": [1]}]})


def _build(config: ModelConfig, artifact: Path, tmp_path: Path, trt: StandIn | None = None):
    trt = trt or StandIn()
    path = tmp_path / "engines" / "m.ep"
    tensorrt._build(trt, config, artifact, torch.device("cpu"), path)
    return trt, path


def _saved_outputs(path: Path, *tensors: torch.Tensor) -> torch.Tensor:
    return torch.export.load(str(path)).module()(*tensors)


def test_inputs_that_share_the_batch_axis_are_saved_with_one_batch_dimension(
        tmp_path: Path) -> None:
    batch = torch.export.Dim("batch", min=1, max=8)
    config, artifact = _model(
        tmp_path, Masked(), (torch.ones(2, 4), torch.ones(2, 4)), ({0: batch}, {0: batch}),
        {"backend": "tensorrt", "max_batch_size": 8,
         "inputs": [{"name": "x", "datatype": "FP32", "dims": [4]},
                    {"name": "mask", "datatype": "FP32", "dims": [4]}],
         "outputs": [{"name": "y", "datatype": "FP32", "dims": [1]}]})
    trt, path = _build(config, artifact, tmp_path)
    x, mask = torch.randn(5, 4), (torch.rand(5, 4) > 0.5).float()
    torch.testing.assert_close(_saved_outputs(path, x, mask), Masked()(x, mask))
    (compiled,) = trt.compiled
    assert [(i.min_shape, i.opt_shape, i.max_shape) for i in compiled["inputs"]] == [
        ((1, 4), (4, 4), (8, 4))] * 2


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_a_batched_model_is_saved_with_its_batch_range_in_its_precision(
        tmp_path: Path, precision: str) -> None:
    batch = torch.export.Dim("batch", min=1, max=16)
    model = Small().eval()
    config, artifact = _model(
        tmp_path, model, (torch.randn(2, 3, 8, 8),), ({0: batch},),
        {"backend": "tensorrt", "precision": precision, "max_batch_size": 16,
         "tensorrt": {"opt_batch_size": 4, "workspace_mib": 256},
         "inputs": [{"name": "image", "datatype": "FP32", "dims": [3, 8, 8]}],
         "outputs": [{"name": "logits", "datatype": "FP32", "dims": [2]}]})
    trt, path = _build(config, artifact, tmp_path)
    (compiled,) = trt.compiled
    dtype = torch.float16 if precision == "fp16" else torch.float32
    assert [(i.min_shape, i.opt_shape, i.max_shape, i.dtype) for i in compiled["inputs"]] == [
        ((1, 3, 8, 8), (4, 3, 8, 8), (16, 3, 8, 8), dtype)]
    assert compiled["workspace_size"] == 256 << 20
    for rows in (1, 3, 16):
        image = torch.randn(rows, 3, 8, 8)
        out = _saved_outputs(path, image.to(dtype))
        assert out.dtype == dtype
        assert out.shape == (rows, 2)
        torch.testing.assert_close(out.float(), model(image), atol=2e-2, rtol=2e-2)


def test_a_model_without_batching_keeps_the_dims_it_declares(tmp_path: Path) -> None:
    config, artifact = _model(
        tmp_path, Mean(), (torch.randn(2, 4),), None,
        {"backend": "tensorrt", "max_batch_size": 0,
         "inputs": [{"name": "x", "datatype": "FP32", "dims": [2, 4]}],
         "outputs": [{"name": "y", "datatype": "FP32", "dims": [2, 1]}]})
    trt, path = _build(config, artifact, tmp_path)
    (compiled,) = trt.compiled
    assert [(i.min_shape, i.max_shape) for i in compiled["inputs"]] == [((2, 4), (2, 4))]
    x = torch.randn(2, 4)
    torch.testing.assert_close(_saved_outputs(path, x), x.mean(dim=-1, keepdim=True))


@pytest.mark.parametrize("opt", [1, 16])
def test_a_variable_dim_is_built_over_its_whole_range(tmp_path: Path, opt: int) -> None:
    batch = torch.export.Dim("batch", min=1, max=4)
    length = torch.export.Dim("length", min=1, max=64)
    config, artifact = _model(
        tmp_path, Mean(), (torch.randn(2, 8),), ({0: batch, 1: length},),
        {"backend": "tensorrt", "max_batch_size": 4,
         "inputs": [{"name": "x", "datatype": "FP32", "dims": [-1]}],
         "outputs": [{"name": "y", "datatype": "FP32", "dims": [1]}],
         "tensorrt": {"shapes": {"x": {"min": [1], "opt": [opt], "max": [64]}}}})
    trt, path = _build(config, artifact, tmp_path)
    (compiled,) = trt.compiled
    assert [(i.min_shape, i.opt_shape, i.max_shape) for i in compiled["inputs"]] == [
        ((1, 1), (2, opt), (4, 64))]
    for rows, columns in ((1, 1), (3, 17), (4, 64)):
        x = torch.randn(rows, columns)
        torch.testing.assert_close(_saved_outputs(path, x), x.mean(dim=-1, keepdim=True))


def test_warm_up_inputs_lie_inside_the_engine_profile(tmp_path: Path) -> None:
    """An engine takes only the shapes it was built for: warm-up's must be among them."""
    config, _ = _model(
        tmp_path, Mean(), (torch.randn(2, 32),), ({0: torch.export.Dim("batch", max=4),
                                                    1: torch.export.Dim("length", min=16,
                                                                        max=64)},),
        {"backend": "tensorrt", "max_batch_size": 4,
         "inputs": [{"name": "x", "datatype": "FP32", "dims": [-1]}],
         "outputs": [{"name": "y", "datatype": "FP32", "dims": [1]}],
         "tensorrt": {"shapes": {"x": {"min": [16], "opt": [32], "max": [64]}}}})
    (low, _, high), = tensorrt.input_profiles(config).values()
    for rows in config.warmup_batch_sizes:
        (x,) = example_inputs(config, rows)
        assert all(a <= s <= b for a, s, b in zip(low, x.shape, high, strict=True)), x.shape
    assert example_inputs(config, 2)[0].shape == (2, 32)


def test_every_keyword_given_to_torch_tensorrt_is_one_it_reads(tmp_path: Path) -> None:
    """compile and save take **kwargs: a misspelt option would be dropped without a word."""
    config, artifact = _mean_model(tmp_path)
    trt, path = _build(config, artifact, tmp_path)  # the stand-in raises on any other
    (compiled,) = trt.compiled
    assert compiled["cache_built_engines"]
    assert compiled["reuse_cached_engines"]
    assert compiled["device"] == torch.device("cpu")
    assert Path(compiled["engine_cache_dir"]).parent == path.parent
    (saved,) = trt.saved
    assert saved["path"] == str(path.with_suffix(f".{os.getpid()}.tmp"))
    assert path.is_file()
    assert not list(path.parent.glob("*.tmp"))


def test_the_stand_in_refuses_what_torch_tensorrt_would_not_read() -> None:
    trt = StandIn()
    with pytest.raises(TypeError, match="reads no keyword workspace_sze"):
        trt.dynamo.compile(None, arg_inputs=[], workspace_sze=1)
    with pytest.raises(TypeError, match="reads no keyword min"):
        trt.Input(min=(1,), opt_shape=(1,), max_shape=(1,))


def test_example_inputs_are_unchanged_for_fixed_dims(tmp_path: Path) -> None:
    config, _ = _model(
        tmp_path, Mean(), (torch.randn(2, 4),), ({0: torch.export.Dim("batch", max=8)},),
        {"max_batch_size": 8, "inputs": [{"name": "x", "datatype": "FP32", "dims": [4]}],
         "outputs": [{"name": "y", "datatype": "FP32", "dims": [1]}]})
    (x,) = example_inputs(config, 3)
    assert x.shape == (3, 4)
    assert x.dtype == np.float32


def test_a_restart_loads_the_saved_engine_and_a_changed_profile_builds_anew(
        tmp_path: Path) -> None:
    config, artifact = _mean_model(tmp_path)
    cache, cpu = tmp_path / "engines", torch.device("cpu")
    trt = StandIn()
    built, path, hit = tensorrt.load_or_build(trt, config, artifact, cpu, cache, "L4")
    assert not hit
    assert path.parent == cache
    assert path.name.startswith("m-1-")
    again, same, hit = tensorrt.load_or_build(trt, config, artifact, cpu, cache, "L4")
    assert hit
    assert same == path
    assert len(trt.compiled) == 1
    x = torch.randn(6, 4)
    torch.testing.assert_close(again(x), built(x))
    wider = config.model_copy(update={"tensorrt": config.tensorrt.model_copy(
        update={"opt_batch_size": 2})})
    *_, hit = tensorrt.load_or_build(trt, wider, artifact, cpu, cache, "L4")
    assert not hit
    *_, hit = tensorrt.load_or_build(trt, config, artifact, cpu, cache, "H100")
    assert not hit
    assert len(trt.compiled) == 3


def test_save_from_named_inputs_alone_splits_a_shared_batch_axis(tmp_path: Path) -> None:
    """Why ``_build`` gives ``save`` the build's dynamic shapes: from named Input objects
    alone, 2.13 gives each input's batch axis a Dim of its own, which a model that ties the
    two (here ``x * mask``) violates."""
    batch = torch.export.Dim("batch", min=1, max=8)
    program = torch.export.export(Masked(), (torch.ones(2, 4), torch.ones(2, 4)),
                                  dynamic_shapes=({0: batch}, {0: batch}))
    trt = StandIn()
    named = [trt.Input(min_shape=(1, 4), opt_shape=(4, 4), max_shape=(8, 4), name=name)
             for name in ("x", "mask")]
    with pytest.raises(torch._dynamo.exc.UserError, match="Constraints violated"):
        trt.save(program.module(), str(tmp_path / "split.ep"), arg_inputs=named)
    shared = [trt.Input(min_shape=(1, 4), opt_shape=(4, 4), max_shape=(8, 4), name=name,
                        shared_dims={0: "batch"}) for name in ("x", "mask")]
    trt.save(program.module(), str(tmp_path / "shared.ep"), arg_inputs=shared)
    x = torch.randn(5, 4)
    torch.testing.assert_close(_saved_outputs(tmp_path / "shared.ep", x, x), Masked()(x, x))
