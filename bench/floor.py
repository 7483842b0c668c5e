"""The HTTP floor: what one request costs with no model behind it.

A bare ASGI app on the same uvicorn stack as ``aiinfra serve`` (same loop, parser and
options): it reads the infer body, parses it with orjson and returns a fixed V2 response
shaped like the model's. Whatever a server spends per request above this is its own work.
It answers the model's metadata so that the same load generators drive it unchanged.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import orjson
import uvicorn

from serving.repository import ModelRepository


def create_floor_app(repository: Path, model_name: str):
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
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
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
    args = parser.parse_args()
    uvicorn.run(create_floor_app(args.repository, args.model), host="127.0.0.1",
                port=args.port, log_level="warning", access_log=False, loop="auto",
                http="auto", server_header=False, proxy_headers=False)


if __name__ == "__main__":
    main()
