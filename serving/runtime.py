"""The server's state for one process: settings, metrics, registry, readiness."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import threading
from dataclasses import dataclass, field

import torch

from serving import tracing
from serving.cache import PredictionCache
from serving.errors import ModelNotFound, ServingError
from serving.metrics import ServingMetrics
from serving.predlog import PredictionLog
from serving.registry import ModelRegistry
from serving.repository import ModelRepository
from serving.settings import Settings

log = logging.getLogger(__name__)

@dataclass
class Runtime:
    settings: Settings
    metrics: ServingMetrics
    registry: ModelRegistry | None = None
    cache: PredictionCache | None = None
    predlog: PredictionLog | None = None
    ready: bool = False
    draining: bool = False
    startup_error: str | None = None
    _startup: asyncio.Task | None = field(default=None, repr=False)
    # Called (from the signal handler) when a drain begins: the gRPC front end stops taking
    # calls then, as uvicorn stops taking connections.
    on_drain: list = field(default_factory=list, repr=False)

    async def start(self) -> None:
        """Open the repository and load the start-up models in the background.

        The cache and the prediction log connect in the background too: neither Redis nor
        Postgres being down delays readiness or fails a request.
        """
        settings = self.settings
        tracing.configure(settings.tracing)
        self.cache = PredictionCache(settings, self.metrics)
        await self.cache.start()
        if settings.database_dsn:
            self.predlog = PredictionLog(settings, self.metrics)
            await self.predlog.start()
        if settings.torch_threads:
            torch.set_num_threads(settings.torch_threads)
        if settings.model_repository is None and not settings.demo_repository.is_dir():
            raise FileNotFoundError(
                "no model repository: AIINFRA_MODEL_REPOSITORY is not set and the demo "
                f"repository {settings.demo_repository} is not built (`aiinfra serve` builds "
                "it before the server starts)")
        repository = ModelRepository(settings.repository_path)
        self.registry = ModelRegistry(repository, settings, self.metrics)
        self._startup = asyncio.create_task(self._load_startup_models())
        _chain_drain_signals(self)

    async def _load_startup_models(self) -> None:
        assert self.registry is not None
        try:
            names = await self.registry.load_startup(self.settings.load_models)
        except ServingError as exc:
            self.startup_error = exc.message
            log.error("start-up models failed to load; not ready", extra={"error": exc.message})
            return
        except Exception as exc:  # noqa: BLE001 - never a silent, never-ready server
            self.startup_error = f"start-up failed: {exc!r}"
            log.exception("start-up failed; not ready")
            return
        if not names and self.settings.load_models and self.settings.environment == "production":
            # A rollout must not pass readiness serving nothing (an empty model sync);
            # an empty AIINFRA_LOAD_MODELS (lazy loading only) is a choice, not this.
            self.startup_error = (
                f"no model to serve: AIINFRA_LOAD_MODELS {self.settings.load_models} matches "
                f"no model in {self.settings.repository_path}")
            log.error("no start-up model; not ready", extra={"error": self.startup_error})
            return
        if self.settings.gc_freeze:
            gc.freeze()  # start-up objects live as long as the process: stop rescanning them
        self.ready = True
        log.info("ready", extra={"models": names, "gc_frozen": gc.get_freeze_count()})

    async def stop(self) -> None:
        self.ready = False
        self.draining = True
        if self._startup is not None and not self._startup.done():
            self._startup.cancel()
        if self.registry is not None:
            await self.registry.close()
        if self.predlog is not None:
            await self.predlog.close()
        if self.cache is not None:
            await self.cache.close()
        tracing.shutdown()

    @property
    def not_ready_reason(self) -> str | None:
        """Why ``/v2/health/ready`` is off (None when ready)."""
        if self.draining:
            return "draining: shutting down"
        if self.startup_error is not None:
            return self.startup_error
        if not self.ready:
            return "loading the start-up models"
        return self.registry.problem() if self.registry is not None else None

    @property
    def is_ready(self) -> bool:
        return self.not_ready_reason is None

    def model_label(self, name: str) -> str:
        """The metric label for a model: unknown names share one label (bounded cardinality)."""
        assert self.registry is not None
        if self.registry.loaded(name) is not None:
            return name
        try:
            self.registry.repository.model_dir(name)
        except ModelNotFound:
            return ""
        return name

    def count_failure(self, label: str, error: ServingError, protocol: str) -> None:
        """One failed request; a refusal (an error with a ``reason``) is counted as one too."""
        self.metrics.requests.labels(label, "failure", protocol).inc()
        if error.reason is not None:
            self.metrics.rejections.labels(label, error.reason).inc()


def _chain_drain_signals(runtime: Runtime) -> None:
    """On SIGTERM or SIGINT (uvicorn drains on both) turn readiness off at once, then let
    uvicorn's own handler drain."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, signal.SIGINT):
        _chain(runtime, signum, signal.getsignal(signum))


def _chain(runtime: Runtime, signum: int, previous) -> None:
    def handler(number, frame) -> None:
        runtime.draining = True
        for callback in runtime.on_drain:
            callback()
        if callable(previous):
            previous(number, frame)
        elif number == signal.SIGINT:
            raise KeyboardInterrupt
        else:
            raise SystemExit(0)

    signal.signal(signum, handler)
