"""Server and model health and metadata: ``GET /v2``, ``/v2/health/*``, ``/v2/models/{m}``."""

from __future__ import annotations

from fastapi import APIRouter, Request

from serving import __version__
from serving.errors import ModelConfigError, ModelNotFound, ModelNotReady
from serving.routes.deps import parse_version, runtime
from serving.routes.json import JSONBody

router = APIRouter()

# schedule_policy: the `timeout` parameter (a nonzero `priority` is refused, not ignored).
EXTENSIONS = ["binary_tensor_data", "schedule_policy", "model_configuration", "statistics"]


@router.get("/v2")
async def server_metadata(request: Request) -> JSONBody:
    extensions = list(EXTENSIONS)
    if runtime(request).settings.repository_control:  # otherwise every call answers 403
        extensions.append("model_repository")
    return JSONBody({"name": "aiinfra", "version": __version__, "extensions": extensions})


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
    registry = runtime(request).registry
    try:
        config = registry.config(model_name)
        served = registry.repository.served_versions(model_name, config)
    except ModelConfigError as exc:  # a ValueError: would leave as a bare 500
        raise ModelNotReady(f"model '{model_name}' is unavailable: {exc}") from None
    version = parse_version(model_version)
    loaded = registry.loaded(model_name)
    # What is served: a loaded model's versions; a model not loaded yet, what would load.
    versions = ([str(v) for v in sorted(loaded.batchers)] if loaded is not None
                else [str(v.version) for v in served])
    if version is not None and str(version) not in versions:
        raise ModelNotFound(f"model '{model_name}' has no version {version}; "
                            f"served: {', '.join(versions)}")
    body = {
        "name": model_name,
        "versions": versions,
        "platform": f"aiinfra_{loaded.backend}" if loaded else "aiinfra",
        "inputs": [{"name": s.name, "datatype": s.datatype, "shape": config.full_shape(s)}
                   for s in config.inputs],
        "outputs": [{"name": s.name, "datatype": s.datatype, "shape": config.full_shape(s)}
                    for s in config.outputs],
    }
    return JSONBody(body)


@router.get("/v2/models/{model_name}/ready")
@router.get("/v2/models/{model_name}/versions/{model_version}/ready")
async def model_ready(request: Request, model_name: str,
                      model_version: str | None = None) -> JSONBody:
    state = runtime(request)
    registry = state.registry
    registry.repository.model_dir(model_name)
    version = parse_version(model_version)
    loaded = registry.loaded(model_name)
    is_ready = (not state.draining and loaded is not None and loaded.problem() is None
                and (version is None or version in loaded.batchers))
    return JSONBody({"name": model_name, "ready": is_ready},
                          status_code=200 if is_ready else 503)
