"""The model repository on disk: ``<repo>/<model>/config.yaml`` + ``<repo>/<model>/<version>/``."""

from serving.repository.config import ModelConfig, TensorSpec, load_model_config
from serving.repository.store import ModelRepository, ModelVersion

__all__ = [
    "ModelConfig",
    "ModelRepository",
    "ModelVersion",
    "TensorSpec",
    "load_model_config",
]
