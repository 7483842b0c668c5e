"""gRPC against HTTP on one aiinfra server: the same model, the same tensors, one load
generator (h2load) for every side, interleaved rounds, medians.

Sides:

- ``grpc``: ``ModelInfer`` with raw tensors over HTTP/2 cleartext, one call in flight per
  connection, as many connections as the HTTP sides use;
- ``grpc_one_channel``: the same calls multiplexed on one connection, the way a gRPC client
  shares one channel;
- ``http_binary``: HTTP/1.1 with Triton's binary tensor extension (binary outputs too);
- ``http_json``: HTTP/1.1 with JSON tensors.

and the same transports against the floors (``bench.floor``: no model, a fixed answer)
served by one process on the same stack, so that what the transport itself costs is apart
from what aiinfra adds: ``floor_grpc``, ``floor_grpc_one_channel`` and ``floor_http_json``.

Each server (the floor, then aiinfra; the other way round in every other round) is started
for its sides and stopped after them: only one server runs, and only one side drives it at
a time.
"""

from __future__ import annotations

import struct
import sys

from bench import h2load
from bench.compare import machine, model_metadata
from bench.payloads import build_body, random_inputs
from bench.process import READY_PROBE, SERVE, free_port, loopback_url, running
from bench.runs import median_run, ratio
from serving.demo import build_demo_repository
from serving.repository import ModelRepository
from serving.rpc import messages
from serving.settings import Settings

SIDES = ("grpc", "grpc_one_channel", "http_binary", "http_json")
# The floors (bench.floor): no model, a fixed answer; the HTTP floor parses JSON only.
FLOOR_SIDES = ("floor_grpc", "floor_grpc_one_channel", "floor_http_json")


def grpc_body(metadata: dict, batch: int, seed: int = 0) -> bytes:
    """One length-prefixed gRPC message: a ``ModelInferRequest`` with raw inputs, the
    tensors ``build_body`` sends over HTTP."""
    request = messages.ModelInferRequest(model_name=metadata["name"])
    for spec, array in random_inputs(metadata, batch, seed):
        tensor = request.inputs.add(name=spec["name"], datatype=spec["datatype"])
        tensor.shape.extend(array.shape)
        request.raw_input_contents.append(array.tobytes())
    payload = request.SerializeToString()
    return b"\x00" + struct.pack(">I", len(payload)) + payload


def _side(name: str, url: str, grpc_url: str, metadata: dict, batch: int,
          concurrency: int) -> dict:
    """How h2load drives one side: URL, body, headers and connection shape."""
    name = name.removeprefix("floor_")
    if name.startswith("grpc"):
        one_channel = name == "grpc_one_channel"
        return {"url": grpc_url + h2load.GRPC_PATH, "body": grpc_body(metadata, batch),
                "headers": h2load.GRPC_HEADERS, "protocol": "grpc", "http1": False,
                "connections": 1 if one_channel else concurrency,
                "streams": concurrency if one_channel else 1}
    body, headers = build_body(metadata, batch, name.removeprefix("http_"))
    return {"url": f"{url}/v2/models/{metadata['name']}/infer", "body": body,
            "headers": headers, "protocol": "http", "http1": True,
            "connections": concurrency, "streams": 1}


def summarise(rounds: list[dict]) -> dict:
    """Each side's medians over the rounds, and gRPC's ratios to the HTTP sides."""
    sides = {}
    for name in rounds[0]:
        runs = [round_[name] for round_ in rounds]
        sides[name] = {**median_run(runs), "rps_rounds": [round(run["rps"], 1) for run in runs]}
    ratios = {}
    for grpc in ("grpc", "grpc_one_channel"):
        for http in ("http_binary", "http_json"):
            if grpc in sides and http in sides:
                ratios[f"rps_{grpc}_vs_{http}"] = ratio(sides[grpc]["rps"],
                                                         sides[http]["rps"])
                ratios[f"p50_{grpc}_vs_{http}"] = ratio(sides[grpc]["p50_ms"],
                                                         sides[http]["p50_ms"])
                ratios[f"p99_{grpc}_vs_{http}"] = ratio(sides[grpc]["p99_ms"],
                                                         sides[http]["p99_ms"])
                ratios[f"request_bytes_{http}_vs_{grpc}"] = ratio(
                    sides[http]["request_body_bytes"], sides[grpc]["request_body_bytes"])
    # What aiinfra serves per transport, against that transport's floor; and the transports
    # against each other with no model behind them.
    for served, floor in (("grpc", "floor_grpc"), ("grpc_one_channel", "floor_grpc_one_channel"),
                          ("http_json", "floor_http_json"),
                          ("floor_grpc", "floor_http_json"),
                          ("floor_grpc_one_channel", "floor_http_json")):
        if served in sides and floor in sides:
            ratios[f"rps_{served}_vs_{floor}"] = ratio(sides[served]["rps"],
                                                        sides[floor]["rps"])
    return {"sides": sides, "ratios": ratios}


def _measure(server, names: list[str], *, model: str, metadata: dict, batch: int,
             concurrency: int, duration_s: float, warmup_s: float, counted: bool) -> dict:
    """Every side in ``names`` against one running server, in turn. ``counted``: the server
    counts its outcomes (aiinfra); the floor does not, so h2load's statuses stand."""
    results = {}
    for name in names:
        plan = _side(name, server.url, loopback_url(server.grpc_port), metadata, batch,
                     concurrency)
        results[name] = h2load.run_h2load(
            plan["url"], plan["body"], plan["headers"],
            metrics_url=f"{server.url}/metrics" if counted else None, model=model,
            protocol=plan["protocol"], connections=plan["connections"],
            streams=plan["streams"], duration_s=duration_s, warmup_s=warmup_s,
            http1=plan["http1"], batch=batch)
    return results


def _rotated(names: list[str], by: int) -> list[str]:
    by %= max(len(names), 1)
    return names[by:] + names[:by]


def run_transports(*, model: str, concurrency: int, duration_s: float, warmup_s: float,
                   rounds: int, batch: int = 1, sides: tuple[str, ...] = SIDES + FLOOR_SIDES
                   ) -> dict:
    """``rounds`` rounds; in each, every side in turn (the order rotated round by round),
    warmed up, then measured for ``duration_s``."""
    unknown = set(sides) - set(SIDES) - set(FLOOR_SIDES)
    if unknown:
        raise ValueError(f"unknown side(s) {sorted(unknown)}: choose from "
                         f"{SIDES + FLOOR_SIDES}")
    settings = Settings()
    repository = settings.model_repository or build_demo_repository(settings.demo_repository)
    config = ModelRepository(repository).config(model)
    metadata = model_metadata(config)
    aiinfra_sides = [name for name in sides if name in SIDES]
    floor_sides = [name for name in sides if name in FLOOR_SIDES]
    options = {"model": model, "metadata": metadata, "batch": batch,
               "concurrency": concurrency, "duration_s": duration_s, "warmup_s": warmup_s}
    env = {"AIINFRA_LOG_LEVEL": "warning", "AIINFRA_MODEL_REPOSITORY": str(repository),
           "AIINFRA_GRPC": "true"}

    def aiinfra(index: int) -> dict:
        port = free_port()
        with running([*SERVE, "--port", str(port), "--load", model], loopback_url(port),
                     env={**env, "AIINFRA_GRPC_PORT": str(free_port())}) as server:
            return _measure(server, _rotated(aiinfra_sides, index), counted=True, **options)

    def floor(index: int) -> dict:
        port, grpc_port = free_port(), free_port()
        command = [sys.executable, "-m", "bench.floor", "--repository", str(repository),
                   "--model", model, "--port", str(port), "--grpc-port", str(grpc_port)]
        with running(command, loopback_url(port), probe=READY_PROBE) as server:
            server.grpc_port = grpc_port
            return _measure(server, _rotated(floor_sides, index), counted=False, **options)

    measured: list[dict] = []
    for index in range(rounds):
        servers = [run for run, names in ((floor, floor_sides), (aiinfra, aiinfra_sides))
                   if names]
        results: dict = {}
        for run in (servers if index % 2 == 0 else servers[::-1]):
            results.update(run(index))
        measured.append({name: results[name] for name in sides})
    return {"model": model, "concurrency": concurrency, "batch": batch,
            "generator": "h2load", "rounds": len(measured), "duration_s": duration_s,
            "warmup_s": warmup_s, "machine": machine(), **summarise(measured),
            "runs": measured}
