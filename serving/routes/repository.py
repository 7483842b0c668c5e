"""Repository control (Triton's extension): index, load, unload. Off by default; bearer auth."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Depends, Request

from serving.errors import InvalidInput
from serving.routes.body import declared_length, read_body
from serving.routes.deps import require_control, runtime
from serving.routes.json import JSONBody

router = APIRouter(dependencies=[Depends(require_control)])

INDEX_BODY_LIMIT = 64 * 1024  # an index request is {"ready": true} at most


@router.post("/v2/repository/index")
async def index(request: Request) -> JSONBody:
    body = await read_body(request.receive, INDEX_BODY_LIMIT,
                           declared_length(request.headers.get("content-length")))
    ready_only = False
    if body.strip():
        try:
            ready_only = bool(orjson.loads(body).get("ready", False))
        except (orjson.JSONDecodeError, AttributeError):
            raise InvalidInput('index body must be a JSON object like {"ready": true}') from None
    return JSONBody(runtime(request).registry.index(ready_only=ready_only))


@router.post("/v2/repository/models/{model_name}/load")
async def load(request: Request, model_name: str) -> JSONBody:
    await runtime(request).registry.load(model_name)
    return JSONBody({})


@router.post("/v2/repository/models/{model_name}/unload")
async def unload(request: Request, model_name: str) -> JSONBody:
    await runtime(request).registry.unload(model_name)
    return JSONBody({})
