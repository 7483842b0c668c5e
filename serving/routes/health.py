"""Server and model health and metadata: ``GET /v2``, ``/v2/health/*``, ``/v2/models/{m}``."""

from __future__ import annotations

from fastapi import APIRouter, Request

from serving import control
from serving.routes.deps import runtime
from serving.routes.json import JSONBody

router = APIRouter()


@router.get("/v2")
async def server_metadata(request: Request) -> JSONBody:
    return JSONBody(control.server_metadata(runtime(request)))


@router.get("/v2/health/live")
async def live() -> JSONBody:
    return JSONBody({"live": True})


@router.get("/v2/health/ready")
async def ready(request: Request) -> JSONBody:
    reason = runtime(request).not_ready_reason
    if reason is None:
        return JSONBody({"ready": True})
    return JSONBody({"ready": False, "reason": reason}, status_code=503)


@router.get("/v2/models/{model_name}")
@router.get("/v2/models/{model_name}/versions/{model_version}")
async def model_metadata(request: Request, model_name: str,
                         model_version: str | None = None) -> JSONBody:
    return JSONBody(control.model_metadata(runtime(request), model_name, model_version))


@router.get("/v2/models/{model_name}/ready")
@router.get("/v2/models/{model_name}/versions/{model_version}/ready")
async def model_ready(request: Request, model_name: str,
                      model_version: str | None = None) -> JSONBody:
    is_ready = control.model_ready(runtime(request), model_name, model_version)
    return JSONBody({"name": model_name, "ready": is_ready},
                    status_code=200 if is_ready else 503)
