"""What the metadata, readiness, configuration, statistics and repository calls answer, for
HTTP and gRPC alike: each function takes the runtime, returns the protocol's answer as plain
data (HTTP sends it as JSON, gRPC parses it into the message of the same field names) and
raises ``ServingError`` subclasses, which each transport maps to its status."""

from __future__ import annotations

import hmac

from serving import __version__
from serving.backends.factory import device_for, resolve_backend
from serving.errors import (
    Forbidden,
    ModelConfigError,
    ModelNotFound,
    ModelNotReady,
    Unauthorized,
)
from serving.repository.config import ModelConfig, TensorSpec
from serving.repository.store import parse_version
from serving.runtime import Runtime

# schedule_policy: the `timeout` parameter (a nonzero `priority` is refused, not ignored).
EXTENSIONS = ["binary_tensor_data", "schedule_policy", "model_configuration", "statistics"]


def server_metadata(rt: Runtime) -> dict:
    extensions = list(EXTENSIONS)
    if rt.settings.repository_control:  # otherwise every call is refused
        extensions.append("model_repository")
    return {"name": "aiinfra", "version": __version__, "extensions": extensions}


def model_metadata(rt: Runtime, name: str, version_text: str | None) -> dict:
    registry = rt.registry
    try:
        config = registry.config(name)
        served = registry.repository.served_versions(name, config)
    except ModelConfigError as exc:  # a ValueError: would leave as a bare 500
        raise ModelNotReady(f"model '{name}' is unavailable: {exc}") from None
    version = parse_version(version_text)
    loaded = registry.loaded(name)
    # What is served: a loaded model's versions; a model not loaded yet, what would load.
    versions = ([str(v) for v in sorted(loaded.batchers)] if loaded is not None
                else [str(v.version) for v in served])
    if version is not None and str(version) not in versions:
        raise ModelNotFound(f"model '{name}' has no version {version}; "
                            f"served: {', '.join(versions)}")
    return {
        "name": name,
        "versions": versions,
        "platform": f"aiinfra_{loaded.backend}" if loaded else "aiinfra",
        "inputs": [{"name": s.name, "datatype": s.datatype, "shape": config.full_shape(s)}
                   for s in config.inputs],
        "outputs": [{"name": s.name, "datatype": s.datatype, "shape": config.full_shape(s)}
                    for s in config.outputs],
    }


def model_ready(rt: Runtime, name: str, version_text: str | None) -> bool:
    """Whether ``name`` (that version, if given) serves now; ``ModelNotFound`` if it is not
    in the repository. False while the server drains."""
    registry = rt.registry
    registry.repository.model_dir(name)
    version = parse_version(version_text)
    loaded = registry.loaded(name)
    return (not rt.draining and loaded is not None and loaded.problem() is None
            and (version is None or version in loaded.batchers))


# -- Triton's model configuration and statistics extensions -----------------------------------
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


def model_config(rt: Runtime, name: str, version_text: str | None) -> dict:
    registry = rt.registry
    loaded = registry.loaded(name)
    try:
        config = registry.config(name)
        backend = loaded.backend if loaded is not None else resolve_backend(config)
        versions = (set(loaded.batchers) if loaded is not None else
                    {v.version for v in registry.repository.served_versions(name, config)})
    except (ModelConfigError, ValueError) as exc:
        raise ModelNotReady(f"model '{name}' is unavailable: {exc}") from None
    version = parse_version(version_text)
    if version is not None and version not in versions:
        raise ModelNotFound(f"model '{name}' has no version {version}; served: "
                            + ", ".join(str(v) for v in sorted(versions)))
    return triton_config(config, backend)


def statistics(rt: Runtime, name: str | None, version_text: str | None) -> dict:
    """Triton's ``model_stats``: every model's (``name`` None) or one model's versions."""
    registry = rt.registry
    if name is None:
        keys = set(registry.statistics.recorded())
        for model in registry.repository.model_names():
            if (loaded := registry.loaded(model)) is not None:
                keys |= {(model, v) for v in loaded.batchers}
        return {"model_stats": [registry.statistics.of(n, v).as_triton(n, v)
                                for n, v in sorted(keys)]}
    registry.repository.model_dir(name)  # not found for a model not in the repository
    versions = {v for _, v in registry.statistics.recorded(name)}
    if (loaded := registry.loaded(name)) is not None:
        versions |= set(loaded.batchers)
    version = parse_version(version_text)
    if version is not None:
        if version not in versions:
            raise ModelNotFound(f"model '{name}' has no statistics for version {version}")
        versions = {version}
    return {"model_stats": [registry.statistics.of(name, v).as_triton(name, v)
                            for v in sorted(versions)]}


# -- repository control ----------------------------------------------------------------------
def require_control(rt: Runtime, authorization: str | None) -> None:
    """Repository control is off unless enabled, and then needs the bearer token
    (``authorization`` is the HTTP header, or the gRPC metadata of the same name)."""
    settings = rt.settings
    if not settings.repository_control:
        raise Forbidden("repository control is disabled on this server "
                        "(set AIINFRA_REPOSITORY_CONTROL=true and AIINFRA_CONTROL_TOKEN)")
    scheme, _, token = (authorization or "").partition(" ")
    expected = settings.control_token.get_secret_value() if settings.control_token else ""
    if scheme.lower() != "bearer" or not expected or not hmac.compare_digest(
            token.encode(), expected.encode()):
        raise Unauthorized("repository control needs 'Authorization: Bearer <token>'",
                           headers={"WWW-Authenticate": "Bearer"})
