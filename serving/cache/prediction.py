"""The prediction cache: in-process tier first, then Redis; look-ups per row of a batch.

For a batching model every row is an independent sample, so each row has its own key: a
request of n rows makes one pipelined round trip to Redis for the rows the in-process tier
lacks, and only the rows found nowhere go to the model. A model without batching has one key
per request. Nothing here raises into a request: any failure is a miss, counted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from serving.cache.codec import InvalidValue, decode_value, encode_value
from serving.cache.keys import cache_key, request_digest, row_digests
from serving.cache.local import LocalCache
from serving.cache.remote import RedisTier
from serving.metrics import ServingMetrics
from serving.repository import ModelConfig
from serving.settings import Settings

log = logging.getLogger(__name__)

Outputs = tuple[np.ndarray, ...]


@dataclass(slots=True)
class CacheLookup:
    """The keys of one request (one per row, or one) and what the cache held for each."""

    keys: list[bytes]
    found: list[Outputs | None]

    @property
    def missing(self) -> list[int]:
        return [i for i, outputs in enumerate(self.found) if outputs is None]

    @property
    def hits(self) -> int:
        return len(self.found) - len(self.missing)


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


class PredictionCache:
    def __init__(self, settings: Settings, metrics: ServingMetrics) -> None:
        self.prefix = settings.redis_key_prefix
        self.max_value_bytes = settings.cache_max_value_bytes
        self.local = LocalCache(settings.cache_local_max_bytes) \
            if settings.cache_local_max_bytes else None
        self.remote = RedisTier(
            settings.redis_dsn, timeout_s=settings.redis_timeout_ms / 1000.0,
            pool_size=settings.redis_pool_size, backoff_max_s=settings.redis_backoff_max_s,
            max_value_bytes=settings.cache_max_value_bytes, metrics=metrics,
        ) if settings.redis_dsn else None
        self.metrics = metrics

    async def start(self) -> None:
        if self.remote is not None:
            await self.remote.start()

    async def close(self) -> None:
        if self.remote is not None:
            await self.remote.close()

    @staticmethod
    def expected_shapes(config: ModelConfig) -> list[list[int]]:
        """Each output's shape for one key: one row of a batch, or the whole output."""
        if config.batching:
            return [[1, *spec.dims] for spec in config.outputs]
        return [list(spec.dims) for spec in config.outputs]

    async def lookup(self, model: str, version: int, fingerprint: str, config: ModelConfig,
                     arrays: Sequence[np.ndarray]) -> CacheLookup:
        started = time.perf_counter()
        names = [spec.name for spec in config.inputs]
        datatypes = [spec.datatype for spec in config.inputs]
        digests = (row_digests(names, datatypes, arrays) if config.batching
                   else [request_digest(names, datatypes, arrays)])
        keys = [cache_key(self.prefix, model, version, fingerprint, digest)
                for digest in digests]
        found: list[Outputs | None] = [None] * len(keys)
        local_hits = remote_hits = 0
        if self.local is not None:
            for i, key in enumerate(keys):
                found[i] = self.local.get(key)
            local_hits = sum(outputs is not None for outputs in found)
        if self.remote is not None and self.remote.up and local_hits < len(keys):
            wanted = [i for i, outputs in enumerate(found) if outputs is None]
            values = await self.remote.get_many([keys[i] for i in wanted])
            shapes = self.expected_shapes(config)
            for i, value in zip(wanted, values, strict=True):
                if value is None:
                    continue
                try:
                    found[i] = decode_value(value, shapes)
                except InvalidValue as exc:
                    self.metrics.cache_errors.labels("invalid").inc()
                    log.debug("cached value refused", extra={"model": model,
                                                             "reason": str(exc)})
                    continue
                remote_hits += 1
                if self.local is not None:
                    self.local.put(keys[i], found[i], config.cache.ttl_s)
        metrics = self.metrics
        if local_hits:
            metrics.cache_hits.labels(model, "local").inc(local_hits)
        if remote_hits:
            metrics.cache_hits.labels(model, "redis").inc(remote_hits)
        misses = len(keys) - local_hits - remote_hits
        if misses:
            metrics.cache_misses.labels(model).inc(misses)
        metrics.cache_lookup_seconds.labels(model).observe(time.perf_counter() - started)
        return CacheLookup(keys, found)

    def store(self, config: ModelConfig, lookup: CacheLookup,
              computed: Sequence[np.ndarray]) -> None:
        """Keep the freshly computed outputs of the rows the look-up missed."""
        missing = lookup.missing
        if config.batching:
            entries = [(lookup.keys[i], tuple(_read_only(o[j:j + 1].copy()) for o in computed))
                       for j, i in enumerate(missing)]
        else:
            entries = [(lookup.keys[0], tuple(_read_only(o) for o in computed))]
        ttl_s = config.cache.ttl_s
        if self.local is not None:
            for key, outputs in entries:
                self.local.put(key, outputs, ttl_s)
            self.metrics.cache_local_bytes.set(self.local.size)
        if self.remote is not None and self.remote.up:
            values = [(key, encode_value(outputs)) for key, outputs in entries]
            fitting = [(k, v) for k, v in values if len(v) <= self.max_value_bytes]
            if len(fitting) < len(values):
                self.metrics.cache_errors.labels("oversize").inc(len(values) - len(fitting))
            self.remote.set_many_soon(fitting, ttl_s)

    @staticmethod
    def assemble(lookup: CacheLookup, computed: Sequence[np.ndarray] | None) -> list[np.ndarray]:
        """The request's outputs in row order: cached rows and computed rows together."""
        missing = lookup.missing
        if not missing:
            if len(lookup.found) == 1:
                return list(lookup.found[0])
            return [np.concatenate(column) for column in zip(*lookup.found, strict=True)]
        assert computed is not None
        if len(missing) == len(lookup.found):
            return list(computed)
        position = {row: j for j, row in enumerate(missing)}
        outputs = []
        for index, array in enumerate(computed):
            pieces = [array[position[row]:position[row] + 1] if found is None else found[index]
                      for row, found in enumerate(lookup.found)]
            outputs.append(np.concatenate(pieces))
        return outputs
