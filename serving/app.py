"""The FastAPI application: routes, one error contract, and the runtime's lifecycle."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI, Response

from serving import __version__
from serving.metrics import ServingMetrics
from serving.routes import extensions, health, repository
from serving.routes.errors import register_error_handlers
from serving.routes.infer import InferFastPath
from serving.runtime import Runtime
from serving.settings import Settings, get_settings


def create_app(settings: Settings | None = None,
               metrics: ServingMetrics | None = None) -> InferFastPath:
    settings = settings or get_settings()
    runtime = Runtime(settings=settings, metrics=metrics or ServingMetrics())

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await runtime.start()
        front = None
        try:
            if settings.grpc:
                from serving.rpc.server import GrpcFrontEnd  # noqa: PLC0415

                front = GrpcFrontEnd(runtime)
                await front.start()
            app.state.grpc = front
            yield
        finally:
            if front is not None:
                await front.stop()  # calls in flight finish before the models close
            await runtime.stop()

    app = FastAPI(title="aiinfra", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    app.state.runtime = runtime
    register_error_handlers(app)
    app.include_router(extensions.router)  # before /v2/models/{m}: "stats" is no model
    app.include_router(health.router)
    app.include_router(repository.router)

    @app.get("/metrics", include_in_schema=False)
    async def metrics_endpoint() -> Response:
        if runtime.predlog is not None:
            runtime.predlog.publish()
        content, media_type = runtime.metrics.render()
        return Response(content, media_type=media_type)

    return InferFastPath(app, runtime)
