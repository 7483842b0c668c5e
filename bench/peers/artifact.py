"""Loading a repository model's artifact in a peer's environment (torch only, no aiinfra)."""

from __future__ import annotations

import torch


def load(artifact: str) -> torch.nn.Module:
    """A ``torch.export`` program (``.pt2``) or a TorchScript module, on CPU."""
    if artifact.endswith(".pt2"):
        return torch.export.load(artifact).module()
    return torch.jit.load(artifact, map_location="cpu").eval()
