"""Triton's model configuration and statistics extensions, so that ``tritonclient``'s
``get_model_config`` and ``get_inference_statistics`` work unchanged:
``GET /v2/models/{m}[/versions/{v}]/config`` and ``GET /v2/models[/{m}[/versions/{v}]]/stats``.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from serving import control
from serving.routes.deps import runtime
from serving.routes.json import JSONBody

router = APIRouter()


@router.get("/v2/models/stats")
async def all_statistics(request: Request) -> JSONBody:
    return JSONBody(control.statistics(runtime(request), None, None))


@router.get("/v2/models/{model_name}/stats")
@router.get("/v2/models/{model_name}/versions/{model_version}/stats")
async def model_statistics(request: Request, model_name: str,
                           model_version: str | None = None) -> JSONBody:
    return JSONBody(control.statistics(runtime(request), model_name, model_version))


@router.get("/v2/models/{model_name}/config")
@router.get("/v2/models/{model_name}/versions/{model_version}/config")
async def model_config(request: Request, model_name: str,
                       model_version: str | None = None) -> JSONBody:
    return JSONBody(control.model_config(runtime(request), model_name, model_version))
