"""The gRPC messages, built from the compiled descriptors of ``inference.proto`` and
``health.proto`` in a descriptor pool of their own.

Generated ``_pb2`` modules would register ``inference.*`` in protobuf's default pool, where
``tritonclient.grpc`` (and any other client of the protocol loaded in the same process)
registers the same names from its own files: the second import fails with "duplicate
symbol". A private pool keeps the server out of every client's way, and there is no generated
code that pins a protobuf release: the message classes are protobuf's own (upb, in C).

``descriptors.binpb`` is the output of ``make protos``; a test compiles the ``.proto`` files
again and fails when the committed file is stale.
"""

from __future__ import annotations

from importlib.resources import files

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

DESCRIPTORS = files(__package__).joinpath("descriptors.binpb")

SERVICE = "inference.GRPCInferenceService"
HEALTH_SERVICE = "grpc.health.v1.Health"

_pool = descriptor_pool.DescriptorPool()
for _file in descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTORS.read_bytes()).file:
    _pool.Add(_file)


def message(full_name: str) -> type:
    """The message class of ``full_name`` (``inference.ModelInferRequest``)."""
    return message_factory.GetMessageClass(_pool.FindMessageTypeByName(full_name))


def methods(service: str) -> dict[str, tuple[type, type, bool, bool]]:
    """``{method: (request class, response class, client streams, server streams)}``."""
    descriptor = _pool.FindServiceByName(service)
    return {m.name: (message(m.input_type.full_name), message(m.output_type.full_name),
                     m.client_streaming, m.server_streaming) for m in descriptor.methods}


def _named(prefix: str, names: str) -> dict[str, type]:
    return {name: message(f"{prefix}.{name}") for name in names.split()}


_M = _named("inference", "ServerLiveResponse ServerReadyResponse ModelReadyResponse "
            "ServerMetadataResponse ModelMetadataResponse ModelInferRequest ModelInferResponse "
            "ModelStreamInferResponse ModelConfigResponse ModelStatisticsResponse "
            "RepositoryIndexResponse RepositoryModelLoadResponse RepositoryModelUnloadResponse "
            "InferParameter InferTensorContents")
ServerLiveResponse = _M["ServerLiveResponse"]
ServerReadyResponse = _M["ServerReadyResponse"]
ModelReadyResponse = _M["ModelReadyResponse"]
ServerMetadataResponse = _M["ServerMetadataResponse"]
ModelMetadataResponse = _M["ModelMetadataResponse"]
ModelInferRequest = _M["ModelInferRequest"]
ModelInferResponse = _M["ModelInferResponse"]
ModelStreamInferResponse = _M["ModelStreamInferResponse"]
ModelConfigResponse = _M["ModelConfigResponse"]
ModelStatisticsResponse = _M["ModelStatisticsResponse"]
RepositoryIndexResponse = _M["RepositoryIndexResponse"]
RepositoryModelLoadResponse = _M["RepositoryModelLoadResponse"]
RepositoryModelUnloadResponse = _M["RepositoryModelUnloadResponse"]
InferParameter = _M["InferParameter"]
InferTensorContents = _M["InferTensorContents"]
HealthCheckRequest = message("grpc.health.v1.HealthCheckRequest")
HealthCheckResponse = message("grpc.health.v1.HealthCheckResponse")
