"""One typed settings object, read once from ``AIINFRA_*`` environment variables."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_URL_SCHEMES = {"redis_url": ("redis", "rediss", "unix"),
                "database_url": ("postgresql", "postgres")}


def _cache_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "aiinfra"


class Settings(BaseSettings):
    """Server settings. Every field is ``AIINFRA_<FIELD>`` in the environment."""

    # Inputs stay out of error messages: URLs and tokens carry secrets.
    model_config = SettingsConfigDict(env_prefix="AIINFRA_", extra="ignore",
                                      hide_input_in_errors=True)

    environment: Literal["development", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1, description="uvicorn worker processes")
    # The Open Inference Protocol's gRPC service (and grpc.health.v1) beside HTTP, in the same
    # process; the bind address is AIINFRA_HOST.
    grpc: bool = Field(True, description="Serve gRPC beside HTTP")
    grpc_port: int = Field(8001, ge=1, le=65535)

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
    # After a failed lazy load, requests get 503 with Retry-After for this long before the
    # model is built again (an explicit load through repository control retries at once).
    load_retry_s: int = Field(30, ge=0)
    # A load (weights, warm-up, a TensorRT build) that takes longer fails with a reason; the
    # build thread cannot be stopped and its result is dropped.
    load_timeout_s: float = Field(900.0, gt=0)
    # Unload, reload and shutdown wait this long for a model's requests in flight (a hung
    # forward would hold them forever); then what still waits is answered 503.
    drain_timeout_s: float = Field(30.0, gt=0)
    max_request_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    grace_period_s: float = Field(30.0, ge=0)

    engine_cache_dir: Path = Field(default_factory=lambda: _cache_home() / "engines")
    torch_threads: int = Field(0, ge=0, description="torch intra-op threads; 0 = torch default")
    gc_freeze: bool = Field(
        True, description="Once the start-up models are loaded, move every object made so far "
        "(torch, the models) out of the garbage collector's reach: its full collections then "
        "scan only what requests made, not every object torch and the models hold")

    # Prediction cache: an in-process LRU/TTL tier, then Redis when AIINFRA_REDIS_URL is set.
    # Models opt in with `cache: {enabled: true}` in their config.yaml.
    redis_url: SecretStr | None = Field(
        None, description="redis://[user:password@]host:port/db; unset: in-process cache only")
    redis_timeout_ms: float = Field(
        5.0, gt=0, le=1000, description="Hard limit on each Redis call, connect included")
    redis_pool_size: int = Field(32, ge=1, description="Redis connections per worker")
    redis_backoff_max_s: float = Field(
        5.0, gt=0, description="Longest wait between reconnect attempts while Redis is down")
    redis_key_prefix: str = Field("aiinfra:", description="Namespace of every cache key")
    cache_max_value_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, description="Larger predictions are neither stored nor read")
    cache_local_max_bytes: int = Field(
        64 * 1024 * 1024, ge=0, description="In-process tier's bound; 0 turns that tier off")

    # Prediction log: a bounded buffer written in the background to Postgres by COPY.
    database_url: SecretStr | None = Field(
        None, description="postgresql://user:password@host:port/db; unset: no prediction log")
    predlog_pool_size: int = Field(2, ge=1, le=64, description="Postgres connections per worker")
    predlog_buffer_size: int = Field(
        100_000, ge=1, description="Records held while Postgres is slow or down; then the "
        "oldest are dropped (counted)")
    predlog_batch_size: int = Field(5_000, ge=1, description="Records per COPY")
    predlog_flush_interval_ms: float = Field(200.0, gt=0)
    predlog_retention_days: int = Field(
        90, ge=0, description="Monthly partitions older than this are dropped; 0 keeps all")
    predlog_outputs: bool = Field(
        False, description="Log a summary of each prediction's outputs (shape, argmax, range)")
    predlog_shutdown_timeout_s: float = Field(
        10.0, ge=0, description="How long shutdown waits to flush the buffer")

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # OpenTelemetry spans of the infer path, exported as the OTEL_* variables say (OTLP/HTTP
    # to OTEL_EXPORTER_OTLP_ENDPOINT by default); a configuration that fails only warns.
    tracing: bool = False
    log_format: Literal["json", "text"] = "json"
    access_log: bool = False

    @field_validator("redis_url", "database_url")
    @classmethod
    def _check_scheme(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        schemes = _URL_SCHEMES[info.field_name]
        scheme = value.get_secret_value().partition("://")[0]
        if scheme not in schemes:
            raise ValueError(f"AIINFRA_{info.field_name.upper()} must start with "
                             + " or ".join(f"{s}://" for s in schemes))
        return value

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
        if self.repository_control and self.workers > 1:
            raise ValueError(
                "AIINFRA_REPOSITORY_CONTROL needs AIINFRA_WORKERS=1: each worker has its own "
                "registry, so a load or unload would reach one worker while the others kept "
                "serving (run more replicas instead of more workers)")
        if self.environment == "production" and self.model_repository is None:
            raise ValueError(
                "AIINFRA_ENVIRONMENT=production needs AIINFRA_MODEL_REPOSITORY: the demo "
                "repository is for trying the server out"
            )
        return self

    @property
    def redis_dsn(self) -> str | None:
        return self.redis_url.get_secret_value() if self.redis_url else None

    @property
    def database_dsn(self) -> str | None:
        return self.database_url.get_secret_value() if self.database_url else None

    @property
    def repository_path(self) -> Path:
        return self.model_repository or self.demo_repository


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
