"""The "before" server to compare against: FastAPI, pydantic bodies, one forward per request.

This is the common first server: a synchronous endpoint (FastAPI runs it in its thread pool),
``torch.tensor(data)`` from parsed JSON, one ``model(x)`` per request, ``.tolist()`` out. It
speaks just enough of the V2 JSON protocol for ``aiinfra bench`` to drive it unchanged.
``--tuned`` is the same without its two avoidable costs (see ``create_naive_app``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

from serving.backends.base import load_module
from serving.repository import ModelRepository


class Tensor(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list


class InferBody(BaseModel):
    id: str | None = None
    inputs: list[Tensor]


def create_naive_app(repository: Path, model_name: str, *, tuned: bool = False) -> FastAPI:
    """``tuned``: the same server as a careful engineer would write it without batching: an
    async endpoint (one forward at a time on the event loop, no thread pool fighting over 2
    cores) and one intra-op thread, so the forward does not oversubscribe the CPU."""
    if tuned:
        torch.set_num_threads(1)
    repo = ModelRepository(repository)
    config = repo.config(model_name)
    module = load_module(repo.served_versions(model_name, config)[-1].artifact)
    app = FastAPI()

    @app.get("/v2/models/{name}")
    def metadata(name: str) -> dict:
        return {"name": name,
                "inputs": [{"name": s.name, "datatype": s.datatype, "shape": config.full_shape(s)}
                           for s in config.inputs],
                "outputs": [{"name": s.name, "datatype": s.datatype,
                             "shape": config.full_shape(s)} for s in config.outputs]}

    def forward(name: str, body: InferBody) -> dict:
        tensor = body.inputs[0]
        x = torch.tensor(tensor.data, dtype=torch.float32).reshape(tensor.shape)
        with torch.no_grad():
            y = module(x)
        if isinstance(y, tuple | list):  # a multi-output model: the first output only
            y = y[0]
        return {"model_name": name, "id": body.id,
                "outputs": [{"name": config.outputs[0].name, "datatype": "FP32",
                             "shape": list(y.shape), "data": y.flatten().tolist()}]}

    if tuned:
        @app.post("/v2/models/{name}/infer")
        async def infer_on_the_loop(name: str, body: InferBody) -> dict:
            return forward(name, body)
    else:
        @app.post("/v2/models/{name}/infer")
        def infer(name: str, body: InferBody) -> dict:
            return forward(name, body)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repository", type=Path, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--tuned", action="store_true",
                        help="async endpoint and one intra-op thread (the tuned baseline)")
    args = parser.parse_args()
    uvicorn.run(create_naive_app(args.repository, args.model, tuned=args.tuned),
                host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
