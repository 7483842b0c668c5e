"""One typed settings object, read once from ``AIINFRA_*`` environment variables."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _cache_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "aiinfra"


class Settings(BaseSettings):
    """Server settings. Every field is ``AIINFRA_<FIELD>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="AIINFRA_", extra="ignore")

    environment: Literal["development", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1, description="uvicorn worker processes")

    model_repository: Path | None = Field(
        None, description="Model repository; unset serves the demo repository built locally."
    )
    demo_repository: Path = Field(default_factory=lambda: _cache_home() / "demo-repository")
    load_models: list[str] = Field(
        default_factory=lambda: ["*"],
        description='Models loaded (and warmed) before ready; ["*"] is all, [] is none (lazy).',
    )
    max_loaded_models: int = Field(0, ge=0, description="LRU bound on loaded models; 0 = none")

    repository_control: bool = Field(
        False, description="Enable POST /v2/repository/* (load, unload, index)."
    )
    control_token: SecretStr | None = Field(
        None, description="Bearer token required by the repository control endpoints."
    )

    overload_status: Literal[503, 429] = 503
    retry_after_s: int = Field(1, ge=0)
    max_request_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    grace_period_s: float = Field(30.0, ge=0)

    engine_cache_dir: Path = Field(default_factory=lambda: _cache_home() / "engines")
    torch_threads: int = Field(0, ge=0, description="torch intra-op threads; 0 = torch default")

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "text"] = "json"
    access_log: bool = False

    @model_validator(mode="after")
    def _check_security(self) -> Settings:
        if self.repository_control:
            token = self.control_token.get_secret_value() if self.control_token else ""
            if len(token) < 16:
                raise ValueError(
                    "AIINFRA_REPOSITORY_CONTROL=true needs AIINFRA_CONTROL_TOKEN of at least "
                    "16 characters (e.g. `openssl rand -hex 32`): loading and unloading models "
                    "is an operator's act"
                )
        if self.environment == "production" and self.model_repository is None:
            raise ValueError(
                "AIINFRA_ENVIRONMENT=production needs AIINFRA_MODEL_REPOSITORY: the demo "
                "repository is for trying the server out"
            )
        return self

    @property
    def repository_path(self) -> Path:
        return self.model_repository or self.demo_repository


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
