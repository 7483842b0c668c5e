"""Run by the gRPC client's own interpreter (``.venv-grpc-client``: tritonclient.grpc needs
protobuf 6, the main venv has 5.29): ``python tritonclient_grpc_driver.py ADDRESS SCENARIO
[JSON]`` prints one JSON object, what tritonclient.grpc saw. Kept to the client's public API
except where a case needs a request the API will not build (then its own messages)."""

from __future__ import annotations

import json
import sys

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.grpc import service_pb2
from tritonclient.utils import InferenceServerException

NUMERIC = {"BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
           "UINT64": np.uint64, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32,
           "INT64": np.int64, "FP16": np.float16, "FP32": np.float32, "FP64": np.float64}


def values(datatype: str) -> np.ndarray:
    dtype = NUMERIC[datatype]
    if datatype == "BOOL":
        return np.array([[True, False, True, True]])
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.array([[info.min, 0, 1, info.max]], dtype=dtype)
    return np.array([[-1.5, 0.0, 2.25, np.finfo(dtype).max]], dtype=dtype)


def error(exc: InferenceServerException) -> dict:
    return {"status": exc.status(), "message": exc.message()}


def infer(client, model: str, name: str, array: np.ndarray, datatype: str, **options):
    tensor = grpcclient.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array)
    return client.infer(model, [tensor], **options)


def metadata(client, _):
    out = {"live": client.is_server_live(), "ready": client.is_server_ready(),
           "server": client.get_server_metadata(as_json=True),
           "model": client.get_model_metadata("scale", as_json=True),
           "model_ready": client.is_model_ready("scale"),
           "version_ready": client.is_model_ready("scale", "7")}
    try:
        client.is_model_ready("nope")
    except InferenceServerException as exc:
        out["unknown"] = error(exc)
    return out


def datatypes(client, _):
    out = {}
    for datatype in NUMERIC:
        sent = values(datatype)
        result = infer(client, f"echo_{datatype.lower()}", "x", sent, datatype)
        got = result.as_numpy("y")
        out[datatype] = {"equal": bool(np.array_equal(got, sent)), "dtype": str(got.dtype),
                         "datatype": result.get_output("y").datatype}
    texts = np.array([["hello"], ["ünïcode"], [""]], dtype=object)
    result = infer(client, "shout", "text", texts, "BYTES")
    out["BYTES"] = {"upper": [v.decode() for v in result.as_numpy("upper").reshape(-1)],
                    "length": result.as_numpy("length").reshape(-1).tolist()}
    import ml_dtypes  # noqa: PLC0415 - tritonclient's own dependency for BF16

    x = np.array([[1.5, -2.0, 3.25, 0.0]], dtype=ml_dtypes.bfloat16)
    result = infer(client, "bf16", "x", x, "BF16")
    y = result.as_numpy("y")
    out["BF16"] = {"y": y.astype(np.float32).reshape(-1).tolist(),
                   "datatype": result.get_output("y").datatype,
                   "total": result.as_numpy("total").reshape(-1).tolist()}
    return out


def config_and_stats(client, _):
    x = np.ones((3, 4), np.float32)
    infer(client, "scale", "x", x, "FP32")
    return {"config": client.get_model_config("scale", as_json=True),
            "stats": client.get_inference_statistics("scale", as_json=True),
            "all": client.get_inference_statistics(as_json=True)}


def compression(client, _):
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    result = infer(client, "scale", "x", x, "FP32", compression_algorithm="gzip")
    return {"y": result.as_numpy("y").tolist()}


def _raw(client, message):
    try:
        client._client_stub.ModelInfer(message)
    except Exception as exc:  # noqa: BLE001 - a grpc.RpcError
        return {"status": str(exc.code()), "message": exc.details()}
    return {"status": "OK"}


def bad(client, _):
    out = {}
    cases = {"wrong shape": ("scale", "x", np.ones((2, 3), np.float32), "FP32", {}),
             "wrong datatype": ("scale", "x", np.ones((2, 4), np.int32), "INT32", {}),
             "unknown model": ("nope", "x", np.ones((2, 4), np.float32), "FP32", {}),
             "unknown version": ("scale", "x", np.ones((2, 4), np.float32), "FP32",
                                 {"model_version": "9"}),
             "unknown input": ("scale", "z", np.ones((2, 4), np.float32), "FP32", {}),
             "unknown output": ("scale", "x", np.ones((2, 4), np.float32), "FP32",
                                {"outputs": [grpcclient.InferRequestedOutput("w")]}),
             "over the size limit": ("scale", "x", np.ones((8, 4), np.float32), "FP32",
                                     {"request_id": "p" * 70_000})}
    for case, (model, name, array, datatype, options) in cases.items():
        try:
            infer(client, model, name, array, datatype, **options)
            out[case] = {"status": "OK"}
        except InferenceServerException as exc:
            out[case] = error(exc)
    short = service_pb2.ModelInferRequest(model_name="scale")
    tensor = short.inputs.add(name="x", datatype="FP32", shape=[2, 4])
    short.raw_input_contents.append(b"\0" * 12)
    out["raw length"] = _raw(client, short)
    both = service_pb2.ModelInferRequest(model_name="scale")
    tensor = both.inputs.add(name="x", datatype="FP32", shape=[2, 4])
    tensor.contents.fp32_contents.extend([1.0] * 8)
    both.raw_input_contents.append(b"\0" * 32)
    out["typed and raw"] = _raw(client, both)
    out["still serving"] = infer(client, "scale", "x", np.ones((1, 4), np.float32),
                                 "FP32").as_numpy("y").tolist()
    return out


def drain(client, options):
    """Send ``count`` calls at once, say so, and report each one's outcome."""
    import threading  # noqa: PLC0415

    results: list = [None] * options["count"]

    def call(i: int) -> None:
        try:
            y = infer(client, "scale", "x", np.full((1, 4), i, np.float32), "FP32",
                      client_timeout=60).as_numpy("y")
            results[i] = {"y": y.tolist()}
        except InferenceServerException as exc:
            results[i] = error(exc)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(options["count"])]
    for thread in threads:
        thread.start()
    print(json.dumps({"sent": True}), flush=True)
    for thread in threads:
        thread.join()
    return {"results": results}


SCENARIOS = {f.__name__: f for f in (metadata, datatypes, config_and_stats, compression, bad,
                                     drain)}

if __name__ == "__main__":
    address, scenario = sys.argv[1], sys.argv[2]
    options = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    client = grpcclient.InferenceServerClient(address)
    try:
        print(json.dumps(SCENARIOS[scenario](client, options), default=str), flush=True)
    finally:
        client.close()
