"""wrk as the load generator, the HTTP floor, and the peers' registry."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bench import wrk
from bench.compare import run_compare
from bench.floor import create_floor_app
from bench.peers import HERE, PEERS, parse_peers
from bench.process import Server


def test_a_wrk_summary_becomes_a_load_result() -> None:
    raw = {"requests": 1200, "duration_us": 2_000_000, "bytes": 1,
           "errors": {"connect": 0, "read": 2, "write": 0, "status": 200, "timeout": 3},
           "latency_us": {"p50": 1500, "p90": 2500, "p95": 3000, "p99": 9000, "max": 20000,
                          "mean": 1700.0},
           "statuses": {"200": 1000, "503": 200}}
    result = wrk.to_load_result(raw, batch=4)
    assert result["requests"] == 1000
    assert result["rps"] == 500.0
    assert result["inferences_per_s"] == 2000.0
    # the refusals and the socket errors (read, timeout) are errors; wrk's "status" is not
    # counted twice
    assert result["errors_total"] == 205
    assert result["socket_errors"] == {"read": 2, "timeout": 3}
    assert result["statuses"] == {"200": 1000, "503": 200}
    assert (result["p50_ms"], result["p99_ms"], result["max_ms"]) == (1.5, 9.0, 20.0)


def test_the_floor_answers_a_fixed_response_shaped_like_the_model(scale_repository) -> None:
    client = TestClient(create_floor_app(scale_repository, "scale"))
    metadata = client.get("/v2/models/scale").json()
    assert [s["shape"] for s in metadata["inputs"]] == [[-1, 4]]
    response = client.post("/v2/models/scale/infer", json={"inputs": [
        {"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]})
    assert response.status_code == 200
    assert [(o["name"], o["shape"]) for o in response.json()["outputs"]] == [
        ("y", [1, 4]), ("total", [1, 1])]


def test_peers_are_pinned_and_named() -> None:
    assert [p.name for p in parse_peers("litserve, kserve")] == ["litserve", "kserve"]
    assert parse_peers(None) == []
    with pytest.raises(ValueError, match="unknown peer"):
        parse_peers("triton")
    for peer in PEERS.values():
        assert peer.version  # a result names the version it measured
        assert (HERE / peer.script).is_file()


@pytest.mark.slow
def test_wrk_drives_a_real_server_and_counts_statuses(scale_repository, start_server) -> None:
    server = start_server(scale_repository)
    result = wrk.run_wrk(server.url, model="scale", concurrency=4, payload="binary",
                         duration_s=1, warmup_s=0.5, batch=2)
    assert result["generator"] == "wrk"
    assert result["requests"] > 50
    assert result["statuses"] == {"200": result["requests"]}
    assert result["errors_total"] == 0
    assert result["inferences_per_s"] == pytest.approx(2 * result["rps"])
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
    # what wrk counted, the server answered (its counter also holds the warm-up's)
    assert server_metrics(server.url) >= result["requests"]


@pytest.mark.slow
def test_wrk_counts_every_status_apart(scale_repository, start_server) -> None:
    server = start_server(scale_repository)
    metadata = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]}
    result = wrk.run_wrk(server.url, model="absent", concurrency=2, payload="json",
                         duration_s=1, warmup_s=0, metadata=metadata)
    assert result["requests"] == 0
    assert set(result["statuses"]) == {"404"}
    assert result["errors_total"] == result["statuses"]["404"] > 10


def server_metrics(url: str) -> float:
    import httpx  # noqa: PLC0415

    text = httpx.get(f"{url}/metrics").text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("aiinfra_inference_requests_total{") and 'outcome="success"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.mark.slow
def test_compare_with_wrk_measures_every_side_and_the_floor(scale_repository, monkeypatch,
                                                            tmp_path) -> None:
    monkeypatch.setenv("AIINFRA_MODEL_REPOSITORY", str(scale_repository))
    monkeypatch.setenv("AIINFRA_ENGINE_CACHE_DIR", str(tmp_path / "engines"))
    result = run_compare(model="scale", concurrency=4, payload="json", duration_s=1,
                         warmup_s=0, batch=1, generator="wrk", workers=(1, 2))
    for side in ("floor", "naive", "naive_tuned", "aiinfra", "aiinfra_w2"):
        assert result[side]["generator"] == "wrk", side
        assert result[side]["errors_total"] == 0, side
        assert result[side]["requests"] > 10, side
    assert result["aiinfra_w2"]["workers"] == 2
    assert result["aiinfra"]["mean_batch_rows"] >= 1
    ratios = result["ratios"]
    assert ratios["rps_vs_floor"] == pytest.approx(
        result["aiinfra"]["rps"] / result["floor"]["rps"])
    assert ratios["rps_aiinfra_w2_vs_aiinfra"] == pytest.approx(
        result["aiinfra_w2"]["rps"] / result["aiinfra"]["rps"])



def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_stopping_a_server_leaves_nothing_of_it_running(tmp_path) -> None:
    """A server whose first process exits on SIGTERM while its children go on (LitServe's
    does) must not leave them running through the sides measured after it."""
    child_pid = tmp_path / "child.pid"
    script = (f"sleep 300 & echo $! > {child_pid}.tmp; mv {child_pid}.tmp {child_pid}; "
              "trap 'exit 0' TERM; while true; do sleep 0.05; done")
    process = subprocess.Popen(["bash", "-c", script], start_new_session=True)
    server = Server(process, "http://127.0.0.1:1", tmp_path / "log")
    deadline = time.monotonic() + 10
    while not child_pid.exists():
        assert time.monotonic() < deadline, "the child never started"
        time.sleep(0.01)
    child = int(child_pid.read_text())
    assert _alive(child)
    assert server.stop(signal.SIGTERM, timeout=10) == 0
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _alive(child), "the server's child outlived it"
