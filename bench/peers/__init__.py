"""Other model servers, measured beside aiinfra under the same load: LitServe (batching) and
the KServe Python model server.

Each runs from its own virtual environment under ``.bench/peers/<name>`` (created on first
use: the same torch as the project, numpy and the peer at a pinned version), so that a
peer's dependency pins never touch the project's. Each serves the repository model's own
artifact at ``/v2/models/<model>/infer`` and takes the same V2 JSON body.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_ROOT = HERE.parent.parent / ".bench" / "peers"
TORCH_VERSION = os.environ.get("TORCH_VERSION", "2.13.0")


@dataclass(frozen=True)
class Peer:
    name: str
    requirement: str  # pinned: a result names the version it measured
    script: str
    probe: str  # the path that answers 200 once the model is loaded

    @property
    def version(self) -> str:
        return self.requirement.partition("==")[2]

    def requirements(self) -> list[str]:
        return [f"torch=={TORCH_VERSION}", "numpy", self.requirement]

    def command(self, python: Path, *, artifact: Path, model: str, output: str,
                port: int) -> list[str]:
        return [str(python), str(HERE / self.script), "--artifact", str(artifact),
                "--model", model, "--output", output, "--port", str(port)]


PEERS = {
    "litserve": Peer("litserve", "litserve==0.2.19", "litserve_server.py", "/health"),
    "kserve": Peer("kserve", "kserve==0.21.0", "kserve_server.py", "/v2/health/ready"),
}


def parse_peers(value: str | None) -> list[Peer]:
    if not value:
        return []
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in PEERS]
    if unknown:
        raise ValueError(f"unknown peer(s) {', '.join(unknown)}; known: {', '.join(PEERS)}")
    return [PEERS[name] for name in names]


def environment(peer: Peer, root: Path = DEFAULT_ROOT) -> Path:
    """The python of ``peer``'s virtual environment, created (and its pins installed) when
    missing or when its requirements changed."""
    venv = root / peer.name
    python = venv / "bin" / "python"
    marker = venv / ".requirements"
    wanted = "\n".join(peer.requirements())
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *peer.requirements()],
                   check=True)
    marker.write_text(wanted)
    return python
