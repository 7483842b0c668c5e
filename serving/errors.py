"""Exceptions are the contract: each one names its HTTP status, metric reason and log status.

Endpoints only raise; ``serving.routes.errors`` renders any of these as ``{"error": "..."}``
with its ``status`` (Triton's mapping: INVALID_ARG → 400, NOT_FOUND → 404, UNAVAILABLE → 503,
INTERNAL → 500, UNSUPPORTED → 501). ``reason`` labels ``aiinfra_rejections_total`` (None: a
failure, not a refusal) and ``log_status`` is the prediction log's ``status`` column.

| error            | status    | reason       | log status   |
|------------------|-----------|--------------|--------------|
| InvalidInput     | 400       | invalid      | invalid      |
| Unauthorized     | 401       | -            | error        |
| Forbidden        | 403       | -            | error        |
| ModelNotFound    | 404       | not_found    | not_found    |
| PayloadTooLarge  | 413       | too_large    | too_large    |
| UnsupportedEncoding | 415    | invalid      | invalid      |
| Unsupported      | 501       | invalid      | invalid      |
| ModelNotReady    | 503       | not_ready    | not_ready    |
| Overloaded       | 503 / 429 | queue_full   | overloaded   |
| DeadlineUnreachable | 503 / 429 | deadline | overloaded |
| RequestTimeout   | 503       | timeout      | timeout      |
| InferenceFailed  | 500       | -            | error        |
"""

from __future__ import annotations

from typing import ClassVar


class ServingError(Exception):
    """Base class. ``status`` is the HTTP status; ``headers`` are sent with the error;
    ``reason`` and ``log_status`` say how metrics and the prediction log count it."""

    status: int = 500
    reason: ClassVar[str | None] = None
    log_status: ClassVar[str] = "error"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class InvalidInput(ServingError):
    """400: the request is malformed or does not match the model's inputs."""

    status = 400
    reason = "invalid"
    log_status = "invalid"


class Unauthorized(ServingError):
    """401: a repository control call without a valid bearer token."""

    status = 401


class Forbidden(ServingError):
    """403: repository control is disabled on this server."""

    status = 403


class ModelNotFound(ServingError):
    """404: no such model, or no such version of it, in the repository."""

    status = 404
    reason = "not_found"
    log_status = "not_found"


class PayloadTooLarge(ServingError):
    """413: the request body is over ``AIINFRA_MAX_REQUEST_BYTES``."""

    status = 413
    reason = "too_large"
    log_status = "too_large"


class UnsupportedEncoding(ServingError):
    """415: a request body in a content coding this server does not decode."""

    status = 415
    reason = "invalid"
    log_status = "invalid"


class Unsupported(ServingError):
    """501: a protocol feature this server does not implement."""

    status = 501
    reason = "invalid"
    log_status = "invalid"


class ModelNotReady(ServingError):
    """503: the model exists but is loading, unloading or failed to load."""

    status = 503
    reason = "not_ready"
    log_status = "not_ready"


class Overloaded(ServingError):
    """503 (or 429 by setting): the model's queue is full; retry after ``Retry-After`` seconds."""

    status = 503
    reason = "queue_full"
    log_status = "overloaded"

    def __init__(self, message: str, *, status: int = 503, retry_after_s: int = 1) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_s)})
        self.status = status


class DeadlineUnreachable(Overloaded):
    """503 (or 429): the request is predicted to finish after its deadline (its ``timeout``,
    the model's ``default_timeout_ms`` or ``latency_budget_ms``), so it is refused at once;
    ``Retry-After`` says when the queue will have drained by the amount it was late."""

    reason = "deadline"


class RequestTimeout(ServingError):
    """503: the request's timeout expired before it was executed (Triton: UNAVAILABLE)."""

    status = 503
    reason = "timeout"
    log_status = "timeout"


class InferenceFailed(ServingError):
    """500: the backend raised while running the batch."""

    status = 500


class ClientDisconnected(Exception):
    """The client went away before its request was read: there is no one to answer."""


class RequestCancelled(Exception):
    """The client went away while its request waited or ran: never computed if it was still
    queued, counted with outcome ``cancelled``, logged with this status."""

    log_status = "cancelled"


class ModelConfigError(ValueError):
    """A model's ``config.yaml`` is invalid; the message says where and how to fix it."""
