"""Backends: choice by capability, numerics of each CPU path, artifacts, demo models."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from serving.backends import create_backend, resolve_backend
from serving.backends.base import Backend, example_inputs
from serving.backends.factory import tensorrt_available
from serving.backends.tensorrt import engine_key, profile
from serving.demo import build_demo_repository
from serving.repository import ModelRepository
from serving.repository.config import ModelConfig, TensorRTConfig
from tests.support.models import SCALE_CONFIG, Scale, write_model


def _config(repository: Path, name: str, **changes):
    return ModelRepository(repository).config(name).model_copy(update=changes)


def _artifact(repository: Path, name: str) -> Path:
    repo = ModelRepository(repository)
    return repo.served_versions(name, repo.config(name))[-1].artifact


def test_auto_resolves_to_a_cpu_path_without_cuda(scale_repository: Path) -> None:
    if tensorrt_available():
        pytest.skip("this machine has CUDA and torch-tensorrt: auto means tensorrt here")
    assert resolve_backend(_config(scale_repository, "scale", backend="auto")) == "eager"
    int8 = _config(scale_repository, "scale", backend="auto", precision="int8")
    assert resolve_backend(int8) == "int8"


def test_tensorrt_without_cuda_says_how_to_fall_back(scale_repository: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    config = _config(scale_repository, "scale", backend="tensorrt")
    with pytest.raises(ValueError, match="CUDA is not available: use backend: auto"):
        resolve_backend(config)


def test_cpu_backends_never_import_torch_tensorrt(demo_repository: Path, tmp_path: Path) -> None:
    for backend in ("auto", "eager", "int8"):
        config = _config(demo_repository, "mlp", backend=backend)
        create_backend(config, _artifact(demo_repository, "mlp"), engine_cache_dir=tmp_path)
    assert "torch_tensorrt" not in sys.modules


def test_eager_matches_the_module(scale_repository: Path, tmp_path: Path) -> None:
    config = _config(scale_repository, "scale", backend="eager")
    backend = create_backend(config, _artifact(scale_repository, "scale"),
                             engine_cache_dir=tmp_path)
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    y, total = backend.forward([x])
    np.testing.assert_array_equal(y, x * 2)
    np.testing.assert_array_equal(total, x.sum(axis=1, keepdims=True))
    assert y.dtype == np.float32
    assert backend.describe() == "eager on cpu"


def test_int8_quantises_linear_layers_of_an_exported_program(demo_repository: Path,
                                                             tmp_path: Path) -> None:
    artifact = _artifact(demo_repository, "mlp")
    eager = create_backend(_config(demo_repository, "mlp", backend="eager"), artifact,
                           engine_cache_dir=tmp_path)
    int8 = create_backend(_config(demo_repository, "mlp", backend="int8"), artifact,
                          engine_cache_dir=tmp_path)
    quantized = [m for m in int8._fn.modules()
                 if isinstance(m, torch.ao.nn.quantized.dynamic.Linear)]
    assert len(quantized) == 3
    x = example_inputs(eager.config, 16)
    reference, approx = eager.forward(x)[0], int8.forward(x)[0]
    assert not np.array_equal(reference, approx)  # really quantised
    relative = np.abs(reference - approx).max() / np.abs(reference).max()
    assert relative < 0.05


def test_compile_backend_matches_eager(scale_repository: Path, tmp_path: Path) -> None:
    config = _config(scale_repository, "scale", backend="compile")
    backend = create_backend(config, _artifact(scale_repository, "scale"),
                             engine_cache_dir=tmp_path)
    assert backend.name == "compile"
    for rows in (1, 5):
        x = np.random.default_rng(rows).standard_normal((rows, 4)).astype(np.float32)
        np.testing.assert_allclose(backend.forward([x])[0], x * 2, rtol=1e-6)


def test_fp16_precision_returns_declared_fp32(scale_repository: Path, tmp_path: Path) -> None:
    config = _config(scale_repository, "scale", backend="eager", precision="fp16")
    backend = create_backend(config, _artifact(scale_repository, "scale"),
                             engine_cache_dir=tmp_path)
    x = np.full((2, 4), 1.5, dtype=np.float32)
    y = backend.forward([x])[0]
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, np.full((2, 4), 3.0, dtype=np.float32))


def test_torchscript_artifact(tmp_path: Path) -> None:
    root = tmp_path / "repository"
    write_model(root, "scale", SCALE_CONFIG)
    scripted = torch.jit.script(Scale())
    (root / "scale" / "2").mkdir()
    torch.jit.save(scripted, str(root / "scale" / "2" / "model.pt"))
    artifact = _artifact(root, "scale")
    assert artifact.name == "model.pt"
    backend = create_backend(_config(root, "scale"), artifact, engine_cache_dir=tmp_path)
    x = np.ones((1, 4), dtype=np.float32)
    np.testing.assert_array_equal(backend.forward([x])[0], x * 2)


def test_int8_refuses_torchscript(tmp_path: Path) -> None:
    root = tmp_path / "repository"
    write_model(root, "scale", SCALE_CONFIG)
    (root / "scale" / "2").mkdir()
    torch.jit.save(torch.jit.script(Scale()), str(root / "scale" / "2" / "model.pt"))
    config = _config(root, "scale", backend="int8")
    with pytest.raises(ValueError, match="needs a torch.export artifact"):
        create_backend(config, _artifact(root, "scale"), engine_cache_dir=tmp_path)


def test_tensorrt_profile_and_engine_key(scale_repository: Path) -> None:
    config = _config(scale_repository, "scale")
    assert profile(config) == (1, 4, 8)
    assert profile(config.model_copy(update={"max_batch_size": 1})) == (1, 1, 1)
    assert profile(config.model_copy(update={"max_batch_size": 3})) == (1, 2, 3)
    tuned = config.model_copy(update={"tensorrt": TensorRTConfig(opt_batch_size=2)})
    assert profile(tuned) == (1, 2, 8)
    artifact = _artifact(scale_repository, "scale")
    key = engine_key(config, artifact, "2.13.0", "NVIDIA H100")
    assert key == engine_key(config, artifact, "2.13.0", "NVIDIA H100")
    assert key != engine_key(config, artifact, "2.13.0", "NVIDIA L4")
    assert key != engine_key(config, artifact, "2.14.0", "NVIDIA H100")
    assert key != engine_key(config.model_copy(update={"precision": "fp16"}), artifact,
                             "2.13.0", "NVIDIA H100")


def test_demo_models_are_reproducible(tmp_path: Path, demo_repository: Path) -> None:
    again = build_demo_repository(tmp_path / "again", models=("mlp",))
    first = create_backend(_config(demo_repository, "mlp"), _artifact(demo_repository, "mlp"),
                           engine_cache_dir=tmp_path)
    second = create_backend(_config(again, "mlp"), _artifact(again, "mlp"),
                            engine_cache_dir=tmp_path)
    x = example_inputs(first.config, 3)
    np.testing.assert_array_equal(first.forward(x)[0], second.forward(x)[0])
    resnet = create_backend(_config(demo_repository, "resnet18"),
                            _artifact(demo_repository, "resnet18"), engine_cache_dir=tmp_path)
    (logits,) = resnet.forward(example_inputs(resnet.config, 2))
    assert logits.shape == (2, 1000)
    assert np.isfinite(logits).all()


def _backend_returning(config, result) -> Backend:
    return Backend(config, lambda *inputs: result, torch.device("cpu"))


def test_outputs_are_checked_against_the_declared_dims(scale_repository) -> None:
    config = _config(scale_repository, "scale")
    backend = _backend_returning(config, (torch.zeros(2, 5), torch.zeros(2, 1)))
    with pytest.raises(RuntimeError, match=r"output 'y' has shape \[2, 5\]; config.yaml "
                                           r"declares \[-1, 4\]"):
        backend.forward([np.zeros((2, 4), np.float32)])


def test_bf16_outputs_are_cast_in_torch(scale_repository) -> None:
    config = _config(scale_repository, "scale")
    backend = _backend_returning(config, (torch.ones(2, 4, dtype=torch.bfloat16),
                                          torch.ones(2, 1, dtype=torch.bfloat16)))
    y, total = backend.forward([np.zeros((2, 4), np.float32)])
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, np.ones((2, 4), np.float32))
    assert total.shape == (2, 1)


# -- the TensorRT profile (review #9): checked on the CPU, built on a GPU ----------------------
def _typed(tmp_path: Path, **config) -> ModelConfig:
    import yaml  # noqa: PLC0415

    from serving.repository import load_model_config  # noqa: PLC0415

    path = tmp_path / "m" / "config.yaml"
    path.parent.mkdir(exist_ok=True)
    base = {"inputs": [{"name": "x", "datatype": "FP32", "dims": [4]}],
            "outputs": [{"name": "y", "datatype": "FP32", "dims": [4]}]}
    path.write_text(yaml.safe_dump({**base, **config}))
    return load_model_config(path, model_name="m")


def test_the_profile_has_a_batch_dimension_only_when_batching(tmp_path: Path) -> None:
    from serving.backends.tensorrt import input_profiles  # noqa: PLC0415

    batching = _typed(tmp_path, max_batch_size=8)
    assert input_profiles(batching) == {"x": ((1, 4), (4, 4), (8, 4))}
    whole = _typed(tmp_path, max_batch_size=0,
                   inputs=[{"name": "x", "datatype": "FP32", "dims": [2, 4]}],
                   outputs=[{"name": "y", "datatype": "FP32", "dims": [2, 4]}])
    # dims hold every dimension: nothing is added in front of them.
    assert input_profiles(whole) == {"x": ((2, 4), (2, 4), (2, 4))}


def test_variable_dims_take_their_range_from_the_config(tmp_path: Path) -> None:
    from serving.backends.tensorrt import input_profiles  # noqa: PLC0415

    config = _typed(tmp_path, max_batch_size=4,
                    inputs=[{"name": "tokens", "datatype": "INT64", "dims": [-1]}],
                    tensorrt={"shapes": {"tokens": {"min": [1], "opt": [128], "max": [512]}}})
    assert input_profiles(config) == {"tokens": ((1, 1), (2, 128), (4, 512))}


def test_a_variable_dim_without_a_range_is_refused_for_tensorrt(tmp_path: Path) -> None:
    from serving.backends.tensorrt import input_profiles  # noqa: PLC0415

    config = _typed(tmp_path, max_batch_size=4,
                    inputs=[{"name": "tokens", "datatype": "INT64", "dims": [-1]}])
    with pytest.raises(ValueError, match=r"input 'tokens' has variable dims \[-1\]: give "
                                         r"tensorrt.shapes.tokens.min/opt/max"):
        input_profiles(config)


@pytest.mark.parametrize(("shapes", "message"), [
    ({"nope": {"min": [1], "opt": [1], "max": [1]}}, "tensorrt.shapes names no input 'nope'"),
    ({"tokens": {"min": [1, 2], "opt": [1], "max": [1]}},
     "tensorrt.shapes.tokens: min, opt and max need 1 dims each"),
    ({"tokens": {"min": [8], "opt": [4], "max": [16]}},
     "tensorrt.shapes.tokens: need min <= opt <= max in every dim"),
])
def test_shape_ranges_are_checked_at_load(tmp_path: Path, shapes: dict, message: str) -> None:
    from serving.errors import ModelConfigError  # noqa: PLC0415

    with pytest.raises(ModelConfigError, match=re.escape(message)):
        _typed(tmp_path, max_batch_size=4,
               inputs=[{"name": "tokens", "datatype": "INT64", "dims": [-1]}],
               tensorrt={"shapes": shapes})


def test_tensorrt_int8_is_refused_rather_than_built_in_fp32(tmp_path: Path, monkeypatch) -> None:
    from serving.backends import factory  # noqa: PLC0415
    from serving.errors import ModelConfigError  # noqa: PLC0415

    with pytest.raises(ModelConfigError, match="precision int8 with backend tensorrt"):
        _typed(tmp_path, backend="tensorrt", precision="int8")
    monkeypatch.setattr(factory, "tensorrt_available", lambda: True)
    # auto on a GPU machine: int8 is what was asked for, and TensorRT would not give it.
    assert factory.resolve_backend(_typed(tmp_path, backend="auto", precision="int8")) == "int8"


def test_the_engine_key_follows_the_shape_ranges(tmp_path: Path, scale_repository: Path) -> None:
    artifact = _artifact(scale_repository, "scale")
    base = _typed(tmp_path, max_batch_size=4,
                  inputs=[{"name": "x", "datatype": "FP32", "dims": [-1]}],
                  tensorrt={"shapes": {"x": {"min": [1], "opt": [8], "max": [16]}}})
    wider = base.model_copy(update={"tensorrt": base.tensorrt.model_copy(update={
        "shapes": {"x": base.tensorrt.shapes["x"].model_copy(update={"max": (32,)})}})})
    assert engine_key(base, artifact, "2.13", "L4") != engine_key(wider, artifact, "2.13", "L4")


def test_dynamic_axes_are_the_batch_and_the_ranged_dims(tmp_path: Path) -> None:
    from serving.backends.tensorrt import dynamic_axes, input_profiles  # noqa: PLC0415

    config = _typed(tmp_path, max_batch_size=4,
                    inputs=[{"name": "tokens", "datatype": "INT64", "dims": [-1]},
                            {"name": "mask", "datatype": "INT64", "dims": [8]}],
                    tensorrt={"shapes": {"tokens": {"min": [1], "opt": [128], "max": [512]}}})
    assert dynamic_axes(config, input_profiles(config)) == [
        {0: ("batch", 1, 4), 1: ("tokens_1", 1, 512)}, {0: ("batch", 1, 4)}]
    fixed = _typed(tmp_path, max_batch_size=0)
    assert dynamic_axes(fixed, input_profiles(fixed)) == [{}]
