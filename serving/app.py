"""The FastAPI application: routes, one error contract, and the runtime's lifecycle."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from serving import __version__
from serving.errors import ServingError
from serving.metrics import ServingMetrics
from serving.routes import health, repository
from serving.routes.infer import InferFastPath
from serving.routes.json import JSONBody
from serving.runtime import Runtime
from serving.settings import Settings, get_settings


def register_error_handlers(app: FastAPI) -> None:
    """Every error leaves as ``{"error": "..."}`` with its status (Triton's mapping)."""

    @app.exception_handler(ServingError)
    async def serving_error(_: Request, exc: ServingError) -> JSONBody:
        return JSONBody({"error": exc.message}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONBody:
        return JSONBody({"error": str(exc.detail)}, status_code=exc.status_code,
                              headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONBody:
        return JSONBody({"error": f"invalid request: {exc.errors()}"}, status_code=400)


def create_app(settings: Settings | None = None,
               metrics: ServingMetrics | None = None) -> InferFastPath:
    settings = settings or get_settings()
    runtime = Runtime(settings=settings, metrics=metrics or ServingMetrics())

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(title="aiinfra", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    app.state.runtime = runtime
    register_error_handlers(app)
    app.include_router(health.router)
    app.include_router(repository.router)

    @app.get("/metrics", include_in_schema=False)
    async def metrics_endpoint() -> Response:
        if runtime.predlog is not None:
            runtime.predlog.publish()
        content, media_type = runtime.metrics.render()
        return Response(content, media_type=media_type)

    return InferFastPath(app, runtime)
