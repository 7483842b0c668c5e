"""``POST /v2/models/{m}[/versions/{v}]/infer`` in JSON or binary tensors."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response

from serving.errors import ModelNotFound, ServingError
from serving.inference import run_inference
from serving.protocol import decode_request, encode_response
from serving.protocol.codec import HEADER_LENGTH
from serving.routes.deps import parse_version, read_body, runtime

router = APIRouter()


@router.post("/v2/models/{model_name}/infer")
@router.post("/v2/models/{model_name}/versions/{model_version}/infer")
async def infer(request: Request, model_name: str, model_version: str | None = None) -> Response:
    started = time.perf_counter()
    rt = runtime(request)
    label = model_name if rt.registry.loaded(model_name) else rt.model_label(model_name)
    if not label:
        rt.count_failure(label, unknown := ModelNotFound(
            f"model '{model_name}' is not in the repository"))
        raise unknown
    metrics = rt.metrics
    in_flight = metrics.in_flight.labels(label)
    in_flight.inc()
    try:
        version = parse_version(model_version)
        body = await read_body(request, rt.settings.max_request_bytes)
        infer_request = decode_request(body, request.headers.get(HEADER_LENGTH))
        async with rt.registry.use(model_name) as model:
            served, outputs = await run_inference(model, version, infer_request)
        content, headers = encode_response(model_name, str(served), infer_request.id, outputs)
    except ServingError as error:
        rt.count_failure(label, error)
        raise
    finally:
        in_flight.dec()
    metrics.requests.labels(label, "success").inc()
    metrics.request_seconds.labels(label).observe(time.perf_counter() - started)
    return Response(content, headers=headers)
