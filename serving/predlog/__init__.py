"""The prediction log: one row per inference request in Postgres (``AIINFRA_DATABASE_URL``)."""

from serving.predlog.writer import PredictionLog

__all__ = ["PredictionLog"]
