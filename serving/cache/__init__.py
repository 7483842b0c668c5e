"""Prediction cache: a bounded in-process LRU/TTL tier, then Redis (``AIINFRA_REDIS_URL``)."""

from serving.cache.prediction import CacheLookup, PredictionCache

__all__ = ["CacheLookup", "PredictionCache"]
