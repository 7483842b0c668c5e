"""Finding models and versions in a repository directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from serving.errors import ModelConfigError, ModelNotFound
from serving.repository.config import ModelConfig, load_model_config

ARTIFACT_NAMES = ("model.pt2", "model.pt", "model.ts")
MAX_VERSION = 2**31 - 1  # versions are logged as a PostgreSQL integer


def version_number(text: str) -> int | None:
    """A version directory's or URL's number: ASCII digits up to ``MAX_VERSION``; else None
    (``str.isdigit`` also takes "²" and "٣", which ``int`` refuses or reads)."""
    if not (text.isascii() and text.isdigit()):
        return None
    number = int(text)
    return number if number <= MAX_VERSION else None


def parse_version(value: str | None) -> int | None:
    """A request's model version: None (the latest) or its number; else ``ModelNotFound``."""
    if value is None:
        return None
    number = version_number(value)
    if number is None:
        raise ModelNotFound(f"model version {value!r} is not a version number "
                            f"(0 to {MAX_VERSION})")
    return number


@dataclass(frozen=True)
class ModelVersion:
    model: str
    version: int
    artifact: Path


class ModelRepository:
    """A read-only view of ``<root>/<model>/config.yaml`` and ``<root>/<model>/<N>/model.*``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"model repository {self.root} does not exist: set AIINFRA_MODEL_REPOSITORY "
                "to a directory holding <model>/config.yaml"
            )

    def model_names(self) -> list[str]:
        return sorted(
            p.name for p in self.root.iterdir() if p.is_dir() and (p / "config.yaml").is_file()
        )

    def model_dir(self, name: str) -> Path:
        path = self.root / name
        if "/" in name or name.startswith(".") or not (path / "config.yaml").is_file():
            raise ModelNotFound(f"model '{name}' is not in the repository")
        return path

    def config(self, name: str) -> ModelConfig:
        return load_model_config(self.model_dir(name) / "config.yaml", model_name=name)

    def versions(self, name: str) -> list[ModelVersion]:
        """All versions with an artifact, oldest first."""
        found = []
        for entry in self.model_dir(name).iterdir():
            number = version_number(entry.name)
            if number is None or not entry.is_dir():
                continue
            artifact = next((entry / a for a in ARTIFACT_NAMES if (entry / a).is_file()), None)
            if artifact is not None:
                found.append(ModelVersion(name, number, artifact))
        if not found:
            raise ModelConfigError(
                f"model '{name}' has no version: add {self.root / name}/1/model.pt2 "
                "(torch.export) or model.pt (TorchScript)"
            )
        return sorted(found, key=lambda v: v.version)

    def served_versions(self, name: str, config: ModelConfig) -> list[ModelVersion]:
        versions = self.versions(name)
        return versions if config.version_policy == "all" else versions[-1:]
