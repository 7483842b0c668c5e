"""Exceptions are the HTTP contract: each one names the status it maps to.

Endpoints only raise; ``serving.app`` registers one handler that turns any of these into
``{"error": "..."}`` with the status below (Triton's mapping: INVALID_ARG → 400,
NOT_FOUND → 404, UNAVAILABLE → 503, INTERNAL → 500, UNSUPPORTED → 501).
"""

from __future__ import annotations


class ServingError(Exception):
    """Base class. ``status`` is the HTTP status; ``headers`` are sent with the error."""

    status: int = 500

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class InvalidInput(ServingError):
    """400: the request is malformed or does not match the model's inputs."""

    status = 400


class Unauthorized(ServingError):
    """401: a repository control call without a valid bearer token."""

    status = 401


class Forbidden(ServingError):
    """403: repository control is disabled on this server."""

    status = 403


class ModelNotFound(ServingError):
    """404: no such model, or no such version of it, in the repository."""

    status = 404


class PayloadTooLarge(ServingError):
    """413: the request body is over ``AIINFRA_MAX_REQUEST_BYTES``."""

    status = 413


class Unsupported(ServingError):
    """501: a protocol feature this server does not implement."""

    status = 501


class ModelNotReady(ServingError):
    """503: the model exists but is loading, unloading or failed to load."""

    status = 503


class Overloaded(ServingError):
    """503 (or 429 by setting): the model's queue is full; retry after ``Retry-After`` seconds."""

    status = 503

    def __init__(self, message: str, *, status: int = 503, retry_after_s: int = 1) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_s)})
        self.status = status


class RequestTimeout(ServingError):
    """503: the request's timeout expired before it was executed (Triton: UNAVAILABLE)."""

    status = 503


class ModelConfigError(ValueError):
    """A model's ``config.yaml`` is invalid; the message says where and how to fix it."""
