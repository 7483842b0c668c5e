"""A minimal client of the server's gRPC services built from the server's own descriptors
(for in-process tests; the real client, tritonclient.grpc, runs in its own interpreter: see
``tests/serving/test_tritonclient_grpc.py``)."""

from __future__ import annotations

import grpc
import numpy as np

from serving.rpc import messages as m


class Client:
    def __init__(self, address: str) -> None:
        self.channel = grpc.insecure_channel(address)
        self._calls = {}
        for service in (m.SERVICE, m.HEALTH_SERVICE):
            for name, (request, response, client_streams, server_streams) in m.methods(
                    service).items():
                make = {(False, False): self.channel.unary_unary,
                        (False, True): self.channel.unary_stream,
                        (True, True): self.channel.stream_stream}[(client_streams,
                                                                   server_streams)]
                self._calls[name] = (request, make(
                    f"/{service}/{name}", request_serializer=request.SerializeToString,
                    response_deserializer=response.FromString))

    def stub(self, method: str):
        """The call itself (``.future``, ``.with_call``, a ``timeout=``)."""
        return self._calls[method][1]

    def request(self, method: str, **fields):
        return self._calls[method][0](**fields)

    def call(self, method: str, request=None, **options):
        message_type, stub = self._calls[method]
        return stub(request if request is not None else message_type(), **options)

    def __getattr__(self, method: str):
        if method.startswith("_") or method not in self._calls:
            raise AttributeError(method)
        return lambda request=None, **options: self.call(method, request, **options)

    def close(self) -> None:
        self.channel.close()


def infer_request(model: str, arrays: dict[str, np.ndarray], datatype: str = "FP32",
                  **fields):
    """A ``ModelInferRequest`` with each array raw, in order."""
    request = m.ModelInferRequest(model_name=model, **fields)
    for name, array in arrays.items():
        tensor = request.inputs.add(name=name, datatype=datatype)
        tensor.shape.extend(array.shape)
        request.raw_input_contents.append(np.ascontiguousarray(array).tobytes())
    return request


def output(response, name: str, dtype=np.float32) -> np.ndarray:
    for index, tensor in enumerate(response.outputs):
        if tensor.name == name:
            return np.frombuffer(response.raw_output_contents[index], dtype).reshape(
                tuple(tensor.shape))
    raise KeyError(name)
