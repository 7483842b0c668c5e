"""Shared request helpers: the runtime, version parsing, control auth."""

from __future__ import annotations

import hmac

from fastapi import Request

from serving.errors import Forbidden, ModelNotFound, Unauthorized
from serving.repository.store import MAX_VERSION, version_number
from serving.runtime import Runtime


def runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def parse_version(value: str | None) -> int | None:
    if value is None:
        return None
    number = version_number(value)
    if number is None:
        raise ModelNotFound(f"model version {value!r} is not a version number "
                            f"(0 to {MAX_VERSION})")
    return number


def require_control(request: Request) -> None:
    """Repository control is off unless enabled, and then needs the bearer token."""
    settings = runtime(request).settings
    if not settings.repository_control:
        raise Forbidden("repository control is disabled on this server "
                        "(set AIINFRA_REPOSITORY_CONTROL=true and AIINFRA_CONTROL_TOKEN)")
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    expected = settings.control_token.get_secret_value() if settings.control_token else ""
    if scheme.lower() != "bearer" or not expected or not hmac.compare_digest(
            token.encode(), expected.encode()):
        raise Unauthorized("repository control needs 'Authorization: Bearer <token>'",
                           headers={"WWW-Authenticate": "Bearer"})
