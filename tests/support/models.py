"""Small model repositories for tests: a two-output Scale model exported like a real one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from serving.demo import build_demo_repository, export_model


class Scale(nn.Module):
    """y = x * 2 (same dtype), and the row sums as a second output."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x * 2, x.sum(dim=1, keepdim=True)


def write_model(root: Path, name: str, config: dict, module: nn.Module | None = None,
                example: torch.Tensor | None = None, version: int = 1) -> Path:
    """Export ``module`` (default: Scale over FP32 [-1, 4]) into ``root/name/version``."""
    module = module if module is not None else Scale()
    example = example if example is not None else torch.zeros(2, 4)
    export_model(module, example, max(config.get("max_batch_size", 8), 2),
                 root / name / str(version) / "model.pt2")
    (root / name / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root / name


SCALE_CONFIG = {
    "backend": "eager",
    "max_batch_size": 8,
    "max_queue_delay_ms": 5,
    "max_queue_size": 16,
    "inputs": [{"name": "x", "datatype": "FP32", "dims": [4]}],
    "outputs": [{"name": "y", "datatype": "FP32", "dims": [4]},
                {"name": "total", "datatype": "FP32", "dims": [1]}],
}


@pytest.fixture(scope="session")
def demo_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo_repository(tmp_path_factory.mktemp("demo") / "repository")


@pytest.fixture
def scale_repository(tmp_path: Path) -> Path:
    root = tmp_path / "repository"
    write_model(root, "scale", SCALE_CONFIG)
    return root
