"""Shared request helpers: the runtime, version parsing, control auth."""

from __future__ import annotations

from fastapi import Request

from serving import control
from serving.repository.store import parse_version
from serving.runtime import Runtime

__all__ = ["parse_version", "require_control", "runtime"]


def runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def require_control(request: Request) -> None:
    """Repository control is off unless enabled, and then needs the bearer token."""
    control.require_control(runtime(request), request.headers.get("authorization"))
