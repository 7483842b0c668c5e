"""TensorRT engines built and served on a GPU (marker ``gpu``).

These run only where CUDA and torch-tensorrt are: ``bench/gpu_check.sh`` runs them with
``pytest -m gpu`` before the GPU suite. The default run deselects them (``-m "not gpu"`` in
pyproject's addopts); on the CPU, ``tests/serving/test_tensorrt_build.py`` checks everything
of this path but the engine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from serving.backends.factory import create_backend, tensorrt_available
from serving.repository import load_model_config
from tests.serving.test_tensorrt_build import Masked, Mean, Small

pytestmark = pytest.mark.gpu


@pytest.fixture(autouse=True)
def _needs_tensorrt() -> None:
    # Selected with -m gpu on a machine without them: fail, do not pass quietly.
    assert tensorrt_available(), "these tests need CUDA and torch-tensorrt (-m gpu)"


def _repository(tmp_path: Path, module: nn.Module, examples, dynamic_shapes, config: dict):
    root = tmp_path / "repository" / "m"
    artifact = root / "1" / "model.pt2"
    artifact.parent.mkdir(parents=True)
    torch.export.save(torch.export.export(module.eval(), examples,
                                          dynamic_shapes=dynamic_shapes), str(artifact))
    (root / "config.yaml").write_text(yaml.safe_dump({"backend": "tensorrt", **config}))
    return load_model_config(root / "config.yaml", model_name="m"), artifact


def test_an_engine_is_built_served_and_loaded_again_from_the_cache(tmp_path: Path) -> None:
    batch = torch.export.Dim("batch", min=1, max=8)
    config, artifact = _repository(
        tmp_path, Masked(), (torch.ones(2, 4), torch.ones(2, 4)), ({0: batch}, {0: batch}),
        {"max_batch_size": 8,
         "inputs": [{"name": "x", "datatype": "FP32", "dims": [4]},
                    {"name": "mask", "datatype": "FP32", "dims": [4]}],
         "outputs": [{"name": "y", "datatype": "FP32", "dims": [1]}]})
    cache = tmp_path / "engines"
    backend = create_backend(config, artifact, engine_cache_dir=cache)
    assert backend.name == "tensorrt"
    assert not backend.cache_hit
    rng = np.random.default_rng(0)
    for rows in (1, 5, 8):
        x = rng.standard_normal((rows, 4)).astype(np.float32)
        mask = (rng.random((rows, 4)) > 0.5).astype(np.float32)
        (y,) = backend.forward([x, mask])
        np.testing.assert_allclose(y, (x * mask).sum(axis=1, keepdims=True), rtol=1e-3,
                                   atol=1e-3)
    again = create_backend(config, artifact, engine_cache_dir=cache)
    assert again.cache_hit
    x = rng.standard_normal((3, 4)).astype(np.float32)
    ones = np.ones_like(x)
    np.testing.assert_allclose(again.forward([x, ones])[0], backend.forward([x, ones])[0],
                               rtol=1e-5, atol=1e-5)


def test_an_fp16_engine_answers_close_to_the_fp32_model(tmp_path: Path) -> None:
    model = Small().eval()
    batch = torch.export.Dim("batch", min=1, max=16)
    config, artifact = _repository(
        tmp_path, model, (torch.randn(2, 3, 8, 8),), ({0: batch},),
        {"precision": "fp16", "max_batch_size": 16,
         "inputs": [{"name": "image", "datatype": "FP32", "dims": [3, 8, 8]}],
         "outputs": [{"name": "logits", "datatype": "FP32", "dims": [2]}]})
    backend = create_backend(config, artifact, engine_cache_dir=tmp_path / "engines")
    image = np.random.default_rng(1).standard_normal((16, 3, 8, 8)).astype(np.float32)
    (logits,) = backend.forward([image])
    assert logits.dtype == np.float32
    with torch.inference_mode():
        want = model(torch.from_numpy(image)).numpy()
    np.testing.assert_allclose(logits, want, rtol=2e-2, atol=2e-2)


def test_a_variable_length_engine_takes_every_length_in_its_range(tmp_path: Path) -> None:
    batch = torch.export.Dim("batch", min=1, max=4)
    length = torch.export.Dim("length", min=1, max=64)
    config, artifact = _repository(
        tmp_path, Mean(), (torch.randn(2, 8),), ({0: batch, 1: length},),
        {"max_batch_size": 4,
         "inputs": [{"name": "x", "datatype": "FP32", "dims": [-1]}],
         "outputs": [{"name": "y", "datatype": "FP32", "dims": [1]}],
         "tensorrt": {"shapes": {"x": {"min": [1], "opt": [16], "max": [64]}}}})
    backend = create_backend(config, artifact, engine_cache_dir=tmp_path / "engines")
    rng = np.random.default_rng(2)
    for rows, columns in ((1, 1), (3, 17), (4, 64)):
        x = rng.standard_normal((rows, columns)).astype(np.float32)
        np.testing.assert_allclose(backend.forward([x])[0], x.mean(axis=1, keepdims=True),
                                   rtol=1e-3, atol=1e-3)
