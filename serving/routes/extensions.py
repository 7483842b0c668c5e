"""Triton's model configuration and statistics extensions, so that ``tritonclient``'s
``get_model_config`` and ``get_inference_statistics`` work unchanged:
``GET /v2/models/{m}[/versions/{v}]/config`` and ``GET /v2/models[/{m}[/versions/{v}]]/stats``.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from serving.backends.factory import device_for, resolve_backend
from serving.errors import ModelConfigError, ModelNotFound, ModelNotReady
from serving.repository.config import ModelConfig, TensorSpec
from serving.routes.deps import parse_version, runtime
from serving.routes.json import JSONBody

router = APIRouter()


def _tensor(spec: TensorSpec) -> dict:
    data_type = "TYPE_STRING" if spec.datatype == "BYTES" else f"TYPE_{spec.datatype}"
    return {"name": spec.name, "data_type": data_type, "dims": list(spec.dims)}


def triton_config(config: ModelConfig, backend: str) -> dict:
    """``config`` in the field names of Triton's ``ModelConfig`` message."""
    body: dict = {
        "name": config.name, "platform": "pytorch_libtorch", "backend": f"aiinfra_{backend}",
        "max_batch_size": config.max_batch_size,
        "input": [_tensor(s) for s in config.inputs],
        "output": [_tensor(s) for s in config.outputs],
    }
    if config.batching:
        body["dynamic_batching"] = {
            "max_queue_delay_microseconds": round(config.max_queue_delay_ms * 1000),
            "default_queue_policy": {
                "max_queue_size": config.max_queue_size,
                "default_timeout_microseconds": round(config.default_timeout_ms * 1000),
                "timeout_action": "REJECT"}}
    kind = "KIND_GPU" if device_for(backend).type == "cuda" else "KIND_CPU"
    body["instance_group"] = [{"name": f"{config.name}_0", "count": config.instance_count,
                               "kind": kind}]
    body["version_policy"] = ({"latest": {"num_versions": 1}} if config.version_policy ==
                              "latest" else {"all": {}})
    return body


@router.get("/v2/models/stats")
async def all_statistics(request: Request) -> JSONBody:
    registry = runtime(request).registry
    keys = set(registry.statistics.recorded())
    for name in registry.repository.model_names():
        if (loaded := registry.loaded(name)) is not None:
            keys |= {(name, v) for v in loaded.batchers}
    return JSONBody({"model_stats": [registry.statistics.of(n, v).as_triton(n, v)
                                     for n, v in sorted(keys)]})


@router.get("/v2/models/{model_name}/stats")
@router.get("/v2/models/{model_name}/versions/{model_version}/stats")
async def model_statistics(request: Request, model_name: str,
                           model_version: str | None = None) -> JSONBody:
    registry = runtime(request).registry
    registry.repository.model_dir(model_name)  # 404 for a model not in the repository
    versions = {v for _, v in registry.statistics.recorded(model_name)}
    if (loaded := registry.loaded(model_name)) is not None:
        versions |= set(loaded.batchers)
    version = parse_version(model_version)
    if version is not None:
        if version not in versions:
            raise ModelNotFound(f"model '{model_name}' has no statistics for version {version}")
        versions = {version}
    return JSONBody({"model_stats": [registry.statistics.of(model_name, v).as_triton(
        model_name, v) for v in sorted(versions)]})


@router.get("/v2/models/{model_name}/config")
@router.get("/v2/models/{model_name}/versions/{model_version}/config")
async def model_config(request: Request, model_name: str,
                       model_version: str | None = None) -> JSONBody:
    registry = runtime(request).registry
    loaded = registry.loaded(model_name)
    try:
        config = registry.config(model_name)
        backend = loaded.backend if loaded is not None else resolve_backend(config)
        versions = (set(loaded.batchers) if loaded is not None else
                    {v.version for v in registry.repository.served_versions(model_name, config)})
    except (ModelConfigError, ValueError) as exc:
        raise ModelNotReady(f"model '{model_name}' is unavailable: {exc}") from None
    version = parse_version(model_version)
    if version is not None and version not in versions:
        raise ModelNotFound(f"model '{model_name}' has no version {version}; served: "
                            + ", ".join(str(v) for v in sorted(versions)))
    return JSONBody(triton_config(config, backend))
