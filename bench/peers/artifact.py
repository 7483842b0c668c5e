"""A peer's command line and the repository model's artifact, in the peer's environment
(torch only, no aiinfra)."""

from __future__ import annotations

import argparse

import torch


def load(artifact: str) -> torch.nn.Module:
    """A ``torch.export`` program (``.pt2``) or a TorchScript module, on CPU."""
    if artifact.endswith(".pt2"):
        return torch.export.load(artifact).module()
    return torch.jit.load(artifact, map_location="cpu").eval()


def arguments(description: str | None) -> argparse.ArgumentParser:
    """The options every peer takes from ``bench.peers.Peer.command``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--artifact", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--port", type=int, required=True)
    return parser
