"""Backends run one batch through a model. ``create_backend`` is the only way to get one."""

from serving.backends.base import Backend
from serving.backends.factory import create_backend, resolve_backend

__all__ = ["Backend", "create_backend", "resolve_backend"]
