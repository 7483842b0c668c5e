"""One rendering of every error, for the infer fast path and the FastAPI routes alike.

A ``ServingError`` leaves as ``{"error": message}`` with its status and headers; anything
unexpected as a 500 that points at the server log (the exception is logged, never sent).
"""

from __future__ import annotations

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from serving.errors import ClientDisconnected, ServingError

JSON = "application/json"
INTERNAL_ERROR = b'{"error":"internal error; see the server log"}'


def render_error(status: int, message: str, headers: dict[str, str] | None = None
                 ) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of an error response."""
    return status, {"content-type": JSON, **(headers or {})}, orjson.dumps({"error": message})


def render_serving_error(error: ServingError) -> tuple[int, dict[str, str], bytes]:
    return render_error(error.status, error.message, error.headers)


def render_internal_error() -> tuple[int, dict[str, str], bytes]:
    return 500, {"content-type": JSON}, INTERNAL_ERROR


def _response(rendered: tuple[int, dict[str, str], bytes]) -> Response:
    status, headers, body = rendered
    return Response(body, status_code=status, headers=headers)


def register_error_handlers(app: FastAPI) -> None:
    """Every error a FastAPI route raises leaves as ``{"error": "..."}`` (Triton's mapping)."""

    @app.exception_handler(ServingError)
    async def serving_error(_: Request, exc: ServingError) -> Response:
        return _response(render_serving_error(exc))

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> Response:
        return _response(render_error(exc.status_code, str(exc.detail),
                                      getattr(exc, "headers", None)))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        return _response(render_error(400, f"invalid request: {exc.errors()}"))

    @app.exception_handler(ClientDisconnected)
    async def client_gone(_: Request, exc: ClientDisconnected) -> Response:
        return Response(status_code=499)  # nobody reads it; nothing to log either

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> Response:
        # Starlette raises the exception again once this is sent: the server logs it then.
        return _response(render_internal_error())
