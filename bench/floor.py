"""The HTTP floor: what one request costs with no model behind it.

A bare ASGI app on the same uvicorn stack as ``aiinfra serve`` (same loop, parser and
options): it reads the infer body, parses it with orjson and returns a fixed V2 response
shaped like the model's. Whatever a server spends per request above this is its own work.
It answers the model's metadata so that the same load generators drive it unchanged.

With ``--grpc-port`` it also serves the gRPC floor in the same loop, as ``aiinfra serve``
does: a bare ``grpc.aio`` server whose ``ModelInfer`` parses the request and returns a fixed
``ModelInferResponse``.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import grpc
import numpy as np
import orjson
import uvicorn

from serving.datatypes import NUMPY_DTYPES
from serving.repository import ModelRepository
from serving.rpc import messages


def grpc_floor_answer(repository: Path, model_name: str) -> bytes:
    """A fixed ``ModelInferResponse``, raw outputs shaped like the model's (one row)."""
    config = ModelRepository(repository).config(model_name)
    response = messages.ModelInferResponse(model_name=model_name, model_version="1")
    for spec in config.outputs:
        shape = [1 if d == -1 else d for d in config.full_shape(spec)]
        tensor = response.outputs.add(name=spec.name, datatype=spec.datatype)
        tensor.shape.extend(shape)
        response.raw_output_contents.append(
            np.zeros(math.prod(shape), dtype=NUMPY_DTYPES[spec.datatype]).tobytes())
    return response.SerializeToString()


def grpc_floor_server(repository: Path, model_name: str, port: int) -> grpc.aio.Server:
    answer = grpc_floor_answer(repository, model_name)

    async def model_infer(request, context) -> bytes:
        return answer

    handler = grpc.method_handlers_generic_handler(messages.SERVICE, {
        "ModelInfer": grpc.unary_unary_rpc_method_handler(
            model_infer, request_deserializer=messages.ModelInferRequest.FromString)})
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    return server


def create_floor_app(repository: Path, model_name: str, grpc_port: int | None = None):
    config = ModelRepository(repository).config(model_name)
    metadata = orjson.dumps({
        "name": model_name, "versions": ["1"], "platform": "floor",
        "inputs": [{"name": s.name, "datatype": s.datatype, "shape": config.full_shape(s)}
                   for s in config.inputs],
        "outputs": [{"name": s.name, "datatype": s.datatype, "shape": config.full_shape(s)}
                    for s in config.outputs]})
    outputs = []
    for spec in config.outputs:
        shape = [1 if d == -1 else d for d in config.full_shape(spec)]
        count = 1
        for dim in shape:
            count *= dim
        outputs.append({"name": spec.name, "datatype": spec.datatype, "shape": shape,
                        "data": [0.0] * count})
    answer = orjson.dumps({"model_name": model_name, "model_version": "1", "outputs": outputs})
    json_headers = [(b"content-type", b"application/json")]

    async def send_body(send, status: int, body: bytes) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [*json_headers, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def app(scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            server = None
            while (message := await receive())["type"] != "lifespan.shutdown":
                if grpc_port is not None:
                    server = grpc_floor_server(repository, model_name, grpc_port)
                    await server.start()
                await send({"type": "lifespan.startup.complete"})
            if server is not None:
                await server.stop(1)
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["method"] == "GET":
            path = scope["path"]
            if path.startswith("/v2/health"):
                return await send_body(send, 200, b"")
            return await send_body(send, 200, metadata)
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        orjson.loads(b"".join(chunks))
        await send_body(send, 200, answer)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repository", type=Path, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--port", type=int, default=8002)
    parser.add_argument("--grpc-port", type=int, default=None)
    args = parser.parse_args()
    uvicorn.run(create_floor_app(args.repository, args.model, args.grpc_port), host="127.0.0.1",
                port=args.port, log_level="warning", access_log=False, loop="auto",
                http="auto", server_header=False, proxy_headers=False)


if __name__ == "__main__":
    main()
