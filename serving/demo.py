"""The embedded demo repository, built locally from seeded weights (no downloads).

``mlp``: input ``input`` FP32 [-1,256] → ``logits`` FP32 [-1,10].
``resnet18``: input ``image`` FP32 [-1,3,224,224] → ``logits`` FP32 [-1,1000].
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from torch import nn

from serving.models.zoo import ResNet18, mlp

log = logging.getLogger(__name__)

# Bump when a demo model or its config changes, so cached builds are rebuilt.
DEMO_REVISION = "1"


@dataclass(frozen=True)
class DemoModel:
    name: str
    build: Callable[[], nn.Module]
    example_shape: tuple[int, ...]
    config: dict


DEMO_MODELS = (
    DemoModel(
        name="mlp",
        build=mlp,
        example_shape=(2, 256),
        config={
            "backend": "auto",
            "max_batch_size": 64,
            "max_queue_delay_ms": 1,
            "max_queue_size": 512,
            "default_timeout_ms": 10000,
            "inputs": [{"name": "input", "datatype": "FP32", "dims": [256]}],
            "outputs": [{"name": "logits", "datatype": "FP32", "dims": [10]}],
        },
    ),
    DemoModel(
        name="resnet18",
        build=ResNet18,
        example_shape=(2, 3, 224, 224),
        config={
            "backend": "auto",
            "max_batch_size": 16,
            "max_queue_delay_ms": 5,
            "max_queue_size": 128,
            "default_timeout_ms": 30000,
            "inputs": [{"name": "image", "datatype": "FP32", "dims": [3, 224, 224]}],
            "outputs": [{"name": "logits", "datatype": "FP32", "dims": [1000]}],
            "warmup": {"batch_sizes": [1, 16]},
        },
    ),
)


def export_model(module: nn.Module, example: torch.Tensor, max_batch: int, path: Path) -> None:
    """Save ``module`` as a ``torch.export`` program with a dynamic batch dimension."""
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    program = torch.export.export(module.eval(), (example,), dynamic_shapes=({0: batch},))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(program, str(path))


def build_demo_repository(root: Path, *, models: tuple[str, ...] | None = None) -> Path:
    """Build the demo repository under ``root`` unless an up-to-date build is there."""
    root = Path(root)
    stamp = root / ".demo-revision"
    if stamp.is_file() and stamp.read_text() == DEMO_REVISION:
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".demo-", dir=root.parent))
    try:
        for demo in DEMO_MODELS:
            if models is not None and demo.name not in models:
                continue
            log.info("building demo model", extra={"model": demo.name})
            torch.manual_seed(0)
            module = demo.build()
            export_model(module, torch.randn(*demo.example_shape),
                         demo.config["max_batch_size"], staging / demo.name / "1" / "model.pt2")
            (staging / demo.name / "config.yaml").write_text(
                yaml.safe_dump(demo.config, sort_keys=False))
        (staging / ".demo-revision").write_text(DEMO_REVISION)
        if root.exists():
            shutil.rmtree(root)
        staging.replace(root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root
