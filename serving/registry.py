"""Loaded models: lazy loading, explicit load/unload, LRU eviction that spares busy models."""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import math
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from serving.backends import Backend, create_backend, resolve_backend
from serving.backends.base import example_inputs
from serving.batcher import DynamicBatcher
from serving.cache.keys import model_fingerprint
from serving.errors import ModelConfigError, ModelNotFound, ModelNotReady, ServingError
from serving.metrics import ServingMetrics
from serving.repository import ModelConfig, ModelRepository
from serving.settings import Settings
from serving.stats import Statistics

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    name: str
    config: ModelConfig
    backend: str
    batchers: dict[int, DynamicBatcher]
    # Per version: what computes its predictions (serving.cache.keys.model_fingerprint).
    fingerprints: dict[int, str] = field(default_factory=dict)
    in_flight: int = 0
    draining: bool = False
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def latest(self) -> int:
        return max(self.batchers)

    def hold(self) -> None:
        """One more request in flight: the model is not retired until it is released."""
        self.in_flight += 1
        self.idle.clear()

    def release(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self.idle.set()

    def problem(self) -> str | None:
        """Why this model cannot serve now (draining, a batch worker that died), or None."""
        if self.draining:
            return f"model '{self.name}' is being unloaded"
        for version, batcher in sorted(self.batchers.items()):
            problem = batcher.problem()
            if problem is not None:
                return f"model '{self.name}' version {version} {problem}"
        return None

    def early_refusal(self, version: int | None) -> ServingError | None:
        """The refusal a request for ``version`` gets before its body is read (a full queue,
        or a wait already past the model's deadline), or None to read it."""
        batcher = self.batchers.get(self.latest if version is None else version)
        if self.draining or batcher is None:
            return None  # the normal path says why
        return batcher.early_refusal()

    def batcher(self, version: int | None) -> DynamicBatcher:
        if version is None:
            return self.batchers[self.latest]
        try:
            return self.batchers[version]
        except KeyError:
            raise ModelNotFound(
                f"model '{self.name}' has no version {version} loaded; served: "
                + ", ".join(str(v) for v in sorted(self.batchers))) from None


def _build_instances(repository: ModelRepository, settings: Settings, name: str
                     ) -> tuple[ModelConfig, str, dict[int, list[Backend]], dict[int, str]]:
    """Blocking: read the config, build every instance of every served version, warm up
    (each warm-up size twice, the second timed); fingerprint each version's artifact."""
    config = repository.config(name)
    kind = resolve_backend(config)
    built: dict[int, list[Backend]] = {}
    fingerprints: dict[int, str] = {}
    for version in repository.served_versions(name, config):
        fingerprints[version.version] = model_fingerprint(version.artifact, config, kind)
        instances = [create_backend(config, version.artifact,
                                    engine_cache_dir=settings.engine_cache_dir)
                     for _ in range(config.instance_count)]
        for backend in instances:
            sizes = config.warmup_batch_sizes
            for size in sizes:  # the first forwards: lazy initialisation, allocation
                backend.forward(example_inputs(config, size))
            for size in sizes:  # warm ones, timed
                inputs = example_inputs(config, size)
                started = time.perf_counter()
                backend.forward(inputs)
                backend.warmup_s[size] = time.perf_counter() - started
        built[version.version] = instances
    return config, kind, built, fingerprints


class ModelRegistry:
    def __init__(self, repository: ModelRepository, settings: Settings,
                 metrics: ServingMetrics) -> None:
        self.repository = repository
        self.settings = settings
        self.metrics = metrics
        self.statistics = Statistics()
        self._loaded: OrderedDict[str, LoadedModel] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}
        self._errors: dict[str, str] = {}
        self._failed_at: dict[str, float] = {}
        self._held_unloaded: set[str] = set()
        self._retiring: dict[str, asyncio.Event] = {}

    # -- queries -------------------------------------------------------------------------
    def loaded(self, name: str) -> LoadedModel | None:
        return self._loaded.get(name)

    def problem(self) -> str | None:
        """The first loaded model that cannot serve, and why."""
        for model in list(self._loaded.values()):
            problem = model.problem()
            if problem is not None and not model.draining:
                return problem
        return None

    def config(self, name: str) -> ModelConfig:
        model = self._loaded.get(name)
        return model.config if model else self.repository.config(name)

    def index(self, *, ready_only: bool = False) -> list[dict]:
        rows = []
        for name in self.repository.model_names():
            model = self._loaded.get(name)
            if model is not None and not model.draining:
                rows.extend({"name": name, "version": str(v), "state": "READY", "reason": ""}
                            for v in sorted(model.batchers))
            elif not ready_only:
                reason = self._errors.get(name, "")
                state = "UNAVAILABLE" if reason or name in self._held_unloaded else "UNLOADED"
                rows.append({"name": name, "version": "", "state": state, "reason": reason})
        return rows

    # -- use -----------------------------------------------------------------------------
    @asynccontextmanager
    async def use(self, name: str) -> AsyncIterator[LoadedModel]:
        """Hold ``name`` for one request, loading it first if needed; never evicted meanwhile."""
        model = self._loaded.get(name)
        if model is None or model.draining:
            # Held from the moment it is registered: a concurrent load's eviction must not
            # retire it before this request runs.
            model = await self._ensure_loaded(name)
        else:
            model.hold()
            self._loaded.move_to_end(name)
        try:
            yield model
        finally:
            model.release()

    async def _ensure_loaded(self, name: str) -> LoadedModel:
        if name in self._held_unloaded:
            raise ModelNotReady(
                f"model '{name}' was unloaded by an operator; "
                f"POST /v2/repository/models/{name}/load to serve it again")
        self.repository.model_dir(name)  # 404 before taking a lock for a bogus name
        failed_at = self._failed_at.get(name)
        if failed_at is not None:
            wait = self.settings.load_retry_s - (time.monotonic() - failed_at)
            if wait > 0:  # remembered: no rebuild on every request
                raise ModelNotReady(
                    f"model '{name}' failed to load: {self._errors.get(name, '')}; next try "
                    f"in {math.ceil(wait)} s", headers={"Retry-After": str(math.ceil(wait))})
        return await self.load(name, explicit=False, hold=True)

    # -- control -------------------------------------------------------------------------
    async def load(self, name: str, *, explicit: bool = True, hold: bool = False
                   ) -> LoadedModel:
        """Load ``name`` (lazily or by request). An explicit load of a loaded model reloads it.
        ``hold``: the model is returned with one request in flight (the caller's)."""
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            current = self._loaded.get(name)
            if current is not None and not current.draining and not explicit:
                if hold:
                    current.hold()
                return current
            self._held_unloaded.discard(name)
            started = time.monotonic()
            retiring = self._retiring.get(name)
            if retiring is not None:  # never two copies of one model (on one GPU)
                await retiring.wait()
            timeout = self.settings.load_timeout_s
            try:
                build = asyncio.get_running_loop().run_in_executor(
                    None, _build_instances, self.repository, self.settings, name)
                config, kind, built, fingerprints = await asyncio.wait_for(build, timeout)
            except ModelNotFound:
                raise
            except Exception as exc:  # noqa: BLE001 - any load failure has a reason to show
                # torch.export guards raise AssertionError, dtype mismatches TypeError: none
                # of them may leave the model silently unloaded (cancellation still passes).
                reason = (f"loading took longer than {timeout:g} s (AIINFRA_LOAD_TIMEOUT_S)"
                          if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__)
                self._errors[name] = reason
                self._failed_at[name] = time.monotonic()
                self.metrics.model_load_failures.labels(name).inc()
                log.error("model load failed", exc_info=not isinstance(
                    exc, ModelConfigError | OSError | TimeoutError),
                    extra={"model": name, "error": reason})
                raise ModelNotReady(
                    f"model '{name}' failed to load: {reason}", headers={
                        "Retry-After": str(max(self.settings.load_retry_s, 1))}) from exc
            self._errors.pop(name, None)
            self._failed_at.pop(name, None)
            batchers = {
                version: DynamicBatcher(name, config, instances, self.metrics,
                                        overload_status=self.settings.overload_status,
                                        retry_after_s=self.settings.retry_after_s,
                                        stats=self.statistics.of(name, version))
                for version, instances in built.items()
            }
            for batcher in batchers.values():
                batcher.start()
            model = LoadedModel(name, config, kind, batchers, fingerprints)
            model.idle.set()
            if hold:
                model.hold()
            self._loaded[name] = model
            self._loaded.move_to_end(name)
            elapsed = time.monotonic() - started
            self.metrics.model_load_seconds.labels(name).observe(elapsed)
            self.metrics.models_loaded.inc(len(batchers))
            log.info("model loaded", extra={"model": name, "backend": kind,
                                            "versions": sorted(batchers),
                                            "seconds": round(elapsed, 3)})
            try:
                if current is not None:
                    await self._retire(current)
            except BaseException:
                if hold:  # the caller never gets the model: give its hold back
                    model.release()
                raise
        try:
            await self._evict(keep=name)
        except BaseException:
            if hold:
                model.release()
            raise
        return model

    async def unload(self, name: str) -> None:
        """Stop serving ``name`` once its in-flight requests finish; it stays unloaded."""
        self.repository.model_dir(name)
        self._held_unloaded.add(name)
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            model = self._loaded.get(name)
            if model is not None:
                await self._retire(model)

    async def _retire(self, model: LoadedModel) -> None:
        """Stop serving ``model`` once its requests in flight are answered, within
        ``drain_timeout_s``; past it, whatever still waits is answered 503."""
        model.draining = True
        if self._loaded.get(model.name) is model:
            del self._loaded[model.name]
        done = self._retiring.setdefault(model.name, asyncio.Event())
        timeout = self.settings.drain_timeout_s
        try:
            async with asyncio.timeout(timeout):
                await model.idle.wait()
                await asyncio.gather(*(b.stop() for b in model.batchers.values()))
        except TimeoutError:
            error = ModelNotReady(f"model '{model.name}' did not drain within {timeout:g} s "
                                  "(AIINFRA_DRAIN_TIMEOUT_S); retry shortly")
            log.error("model did not drain in time; abandoning its requests",
                      extra={"model": model.name, "in_flight": model.in_flight})
            for batcher in model.batchers.values():
                batcher.abandon(error)
        finally:
            self.metrics.models_loaded.dec(len(model.batchers))
            if self._retiring.get(model.name) is done:
                del self._retiring[model.name]
            done.set()
        log.info("model unloaded", extra={"model": model.name})

    async def _evict(self, *, keep: str) -> None:
        limit = self.settings.max_loaded_models
        while limit and len(self._loaded) > limit:
            victim = next((m for n, m in self._loaded.items()
                           if n != keep and m.in_flight == 0 and not m.draining), None)
            if victim is None:
                log.warning("over max_loaded_models but every model is busy",
                            extra={"loaded": len(self._loaded), "limit": limit})
                return
            log.info("evicting least recently used model", extra={"model": victim.name})
            await self._retire(victim)

    async def load_startup(self, patterns: list[str]) -> list[str]:
        names = [n for n in self.repository.model_names()
                 if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
        for name in names:
            await self.load(name, explicit=False)
        return names

    async def close(self) -> None:
        await asyncio.gather(*(self._retire(m) for m in list(self._loaded.values())))
