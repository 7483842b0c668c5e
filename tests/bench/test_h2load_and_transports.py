"""h2load as the load generator for gRPC (and HTTP/1.1 beside it), and the transport
comparison built on it."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from bench import h2load
from bench.floor import grpc_floor_answer
from bench.transports import FLOOR_SIDES, SIDES, grpc_body, run_transports
from serving.rpc import messages

DATA = Path(__file__).parent / "data"
SCALE_METADATA = {"name": "scale", "inputs": [{"name": "x", "datatype": "FP32",
                                               "shape": [-1, 4]}]}


def test_h2loads_own_summary_is_read() -> None:
    # printed by h2load 1.52.0 (Debian bookworm's nghttp2-client) against bench.floor's
    # gRPC floor
    summary = h2load.parse_summary((DATA / "h2load-1.52.0-grpc.txt").read_text())
    assert summary["seconds"] == 1.0
    assert (summary["total"], summary["started"], summary["done"]) == (4427, 4431, 4427)
    assert (summary["succeeded"], summary["failed"], summary["errored"],
            summary["timeout"]) == (4427, 0, 0, 0)
    assert summary["statuses"] == {"2xx": 4427, "3xx": 0, "4xx": 0, "5xx": 0}
    assert (summary["traffic_bytes"], summary["header_bytes"],
            summary["data_bytes"]) == (594117, 13581, 332025)


def test_a_summary_without_its_figures_is_refused() -> None:
    with pytest.raises(RuntimeError, match="no requests"):
        h2load.parse_summary("finished in 1.00s, 2.00 req/s, 1KB/s\n"
                             "status codes: 2 2xx, 0 3xx, 0 4xx, 0 5xx\n"
                             "traffic: 1KB (1000) total, 1KB (100) headers (x), 1KB (900) data")


def _summary(done: int, ok: int, failed: int = 0, seconds: float = 2.0) -> dict:
    return {"seconds": seconds, "total": done, "started": done + 4, "done": done,
            "succeeded": ok, "failed": failed, "errored": 0, "timeout": 0,
            "statuses": {"2xx": ok, "3xx": 0, "4xx": 0, "5xx": done - ok},
            "traffic_bytes": 0, "header_bytes": done * 10, "data_bytes": done * 100}


def test_a_grpc_error_riding_on_http_200_is_an_error() -> None:
    """h2load sees every gRPC answer as HTTP 200; the server's counter says which were
    successes."""
    latencies = np.arange(1, 101, dtype=np.float64)
    result = h2load.to_load_result(_summary(100, 100), latencies,
                                   {"success": 50}, {"success": 140, "failure": 10}, batch=2)
    assert result["requests"] == 90
    assert result["errors_total"] == 10
    assert result["rps"] == 45.0
    assert result["inferences_per_s"] == 90.0
    assert result["server_outcomes"] == {"success": 90, "failure": 10}
    assert result["p50_ms"] == pytest.approx(50.5)
    assert result["max_ms"] == 100.0
    assert (result["response_header_bytes"], result["response_body_bytes"]) == (10, 100)


def test_successes_the_server_counted_after_the_window_do_not_hide_errors_or_add_any() -> None:
    # 3 requests still in flight when h2load stopped were answered (and counted) after it
    result = h2load.to_load_result(_summary(100, 95, failed=5), np.ones(100),
                                   {}, {"success": 98, "cancelled": 2}, batch=1)
    assert result["requests"] == 95
    assert result["errors_total"] == 5


def test_without_the_servers_counts_the_statuses_stand() -> None:
    result = h2load.to_load_result(_summary(100, 97, failed=3), np.ones(100), None, None, 1)
    assert (result["requests"], result["errors_total"]) == (97, 3)


def test_the_grpc_body_is_one_length_prefixed_request_with_raw_inputs() -> None:
    body = grpc_body(SCALE_METADATA, batch=3)
    assert body[0] == 0  # not compressed
    (length,) = struct.unpack(">I", body[1:5])
    assert length == len(body) - 5
    request = messages.ModelInferRequest.FromString(body[5:])
    assert request.model_name == "scale"
    assert [(t.name, t.datatype, list(t.shape)) for t in request.inputs] == [
        ("x", "FP32", [3, 4])]
    assert len(request.raw_input_contents[0]) == 3 * 4 * 4


def test_the_grpc_floor_answers_raw_outputs_shaped_like_the_model(scale_repository) -> None:
    response = messages.ModelInferResponse.FromString(
        grpc_floor_answer(scale_repository, "scale"))
    assert [(t.name, list(t.shape)) for t in response.outputs] == [("y", [1, 4]),
                                                                   ("total", [1, 1])]
    assert [len(raw) for raw in response.raw_output_contents] == [16, 4]


def test_the_h2load_command_keeps_one_call_in_flight_per_connection_unless_told() -> None:
    args = h2load.command("http://h/x", Path("/b"), {"te": "trailers"}, connections=8,
                          streams=1, duration_s=3, http1=True, log=Path("/l"))
    assert args[:5] == ["h2load", "-t1", "-c8", "-m1", "-D3"]
    assert "--h1" in args
    assert "--log-file=/l" in args
    assert args[-1] == "http://h/x"
    assert args[args.index("-H") + 1] == "te: trailers"


@pytest.mark.slow
def test_h2load_drives_grpc_and_the_server_counts_say_what_succeeded(scale_repository,
                                                                     start_server) -> None:
    server = start_server(scale_repository)
    url = f"http://127.0.0.1:{server.grpc_port}{h2load.GRPC_PATH}"
    common = {"metrics_url": f"{server.url}/metrics", "model": "scale", "protocol": "grpc",
              "connections": 4, "duration_s": 1, "warmup_s": 0.5, "http1": False}
    good = h2load.run_h2load(url, grpc_body(SCALE_METADATA, 2), h2load.GRPC_HEADERS,
                             batch=2, **common)
    assert good["requests"] > 20
    assert good["errors_total"] == 0
    assert good["server_outcomes"]["success"] >= good["requests"]
    assert 0 < good["p50_ms"] <= good["p99_ms"] <= good["max_ms"]
    # a request the server refuses (an input it does not know) still answers HTTP 200
    bad_metadata = {"name": "scale", "inputs": [{"name": "nope", "datatype": "FP32",
                                                 "shape": [-1, 4]}]}
    bad = h2load.run_h2load(url, grpc_body(bad_metadata, 1), h2load.GRPC_HEADERS, **common)
    assert bad["h2load"]["statuses"]["2xx"] == bad["h2load"]["done"] > 10
    assert bad["requests"] == 0
    assert bad["errors_total"] == bad["h2load"]["done"]


@pytest.mark.slow
def test_transports_measure_every_side_in_interleaved_rounds(scale_repository, monkeypatch,
                                                             tmp_path) -> None:
    monkeypatch.setenv("AIINFRA_MODEL_REPOSITORY", str(scale_repository))
    monkeypatch.setenv("AIINFRA_ENGINE_CACHE_DIR", str(tmp_path / "engines"))
    result = run_transports(model="scale", concurrency=4, duration_s=1, warmup_s=0,
                            rounds=2)
    assert result["rounds"] == 2
    assert len(result["runs"]) == 2
    for name in SIDES + FLOOR_SIDES:
        side = result["sides"][name]
        assert side["errors_total"] == 0, name
        assert side["requests"] > 10, name
        assert side["concurrency"] == 4, name
        assert side["rps"] == pytest.approx(np.median(
            [run[name]["rps"] for run in result["runs"]])), name
    assert result["sides"]["grpc_one_channel"]["connections"] == 1
    assert result["sides"]["grpc_one_channel"]["streams"] == 4
    # aiinfra's sides were counted by aiinfra, over the transport each side drove
    assert result["sides"]["grpc"]["server_outcomes"]["success"] >= 10
    ratios = result["ratios"]
    assert ratios["rps_grpc_vs_http_json"] == pytest.approx(
        result["sides"]["grpc"]["rps"] / result["sides"]["http_json"]["rps"])
    assert ratios["request_bytes_http_json_vs_grpc"] > 1
    assert ratios["rps_floor_grpc_vs_floor_http_json"] > 0
