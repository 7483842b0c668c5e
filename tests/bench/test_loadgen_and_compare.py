"""The benchmark tools: load generator against a real server, the naive server, reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from bench import report
from bench.compare import in_process_ceiling
from bench.loadgen import run_against, summarize
from bench.naive import create_naive_app
from bench.payloads import build_body
from serving.protocol import HEADER_LENGTH, decode_request


def test_summarize_percentiles() -> None:
    result = summarize([0.001 * i for i in range(1, 101)], 2.0, {200: 100}, 0, batch=4)
    assert result["requests"] == 100
    assert result["rps"] == 50.0
    assert result["inferences_per_s"] == 200.0
    assert result["p50_ms"] == pytest.approx(50.5)
    assert result["p99_ms"] == pytest.approx(99.01)


@pytest.mark.parametrize("payload", ["json", "binary"])
def test_payloads_decode_as_the_server_reads_them(payload: str) -> None:
    metadata = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]}
    body, headers = build_body(metadata, 3, payload)
    request = decode_request(body, headers.get(HEADER_LENGTH))
    assert request.inputs[0].shape == (3, 4)
    assert request.binary_output is (payload == "binary")


@pytest.mark.slow
@pytest.mark.parametrize("payload", ["json", "binary"])
def test_load_generator_against_a_real_server(scale_repository: Path, start_server,
                                              payload: str) -> None:
    server = start_server(scale_repository)
    samples = iter([{"server": 10.0, "gone": None}, {"server": 12.5, "gone": 1.0}])
    result = run_against(server.url, model="scale", concurrency=4, payload=payload,
                         duration_s=1.0, warmup_s=0.2, batch=2,
                         cpu_probe=lambda: next(samples))
    assert result["errors_total"] == 0
    # Sampled once as the window opens and once as it closes; a process missing from either
    # sample reports nothing.
    assert result["server_cpu_us_per_request"] == pytest.approx(2.5e6 / result["requests"])
    assert "gone_cpu_us_per_request" not in result
    assert result["requests"] > 10
    assert result["statuses"] == {"200": result["requests"]}
    assert result["inferences_per_s"] == pytest.approx(2 * result["rps"])
    assert 0 < result["p50_ms"] <= result["p95_ms"] <= result["p99_ms"]


def test_naive_server_answers_v2_json(scale_repository: Path) -> None:
    client = TestClient(create_naive_app(scale_repository, "scale"))
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    response = client.post("/v2/models/scale/infer", json={"inputs": [
        {"name": "x", "datatype": "FP32", "shape": [2, 4], "data": x.ravel().tolist()}]})
    assert response.status_code == 200
    output = response.json()["outputs"][0]
    np.testing.assert_array_equal(np.reshape(output["data"], output["shape"]), x * 2)
    assert client.get("/v2/models/scale").json()["inputs"][0]["shape"] == [-1, 4]


def test_the_tuned_baseline_answers_the_same_on_one_thread(scale_repository: Path) -> None:
    """Review #22: beside the strawman, a tuned one-forward-per-request server: an async
    endpoint on the event loop (no 40-thread pool on 2 cores) and one intra-op thread."""
    import inspect  # noqa: PLC0415

    import torch  # noqa: PLC0415

    threads = torch.get_num_threads()
    try:
        app = create_naive_app(scale_repository, "scale", tuned=True)
        assert torch.get_num_threads() == 1
        (route,) = [r for r in app.routes if getattr(r, "path", "") == "/v2/models/{name}/infer"]
        assert inspect.iscoroutinefunction(route.endpoint)
        client = TestClient(app)
        x = np.arange(8, dtype=np.float32).reshape(2, 4)
        response = client.post("/v2/models/scale/infer", json={"inputs": [
            {"name": "x", "datatype": "FP32", "shape": [2, 4], "data": x.ravel().tolist()}]})
        output = response.json()["outputs"][0]
        np.testing.assert_array_equal(np.reshape(output["data"], output["shape"]), x * 2)
    finally:
        torch.set_num_threads(threads)


def test_in_process_ceiling_counts_rows(scale_repository: Path, tmp_path: Path) -> None:
    result = in_process_ceiling(scale_repository, "scale", 8, 0.2, tmp_path)
    assert result["batch"] == 8
    assert result["batches"] > 0
    assert result["inferences_per_s"] == pytest.approx(
        result["batches"] * 8 / result["seconds"], rel=0.01)


def test_report_writes_json_and_prints_a_table(tmp_path: Path, capsys) -> None:
    run = summarize([0.01, 0.02], 1.0, {200: 2}, 0, batch=1)
    result = {"model": "mlp", "payload": "json", "concurrency": 2, "batch": 1,
              "ceiling": {"batch": 2, "inferences_per_s": 10.0}, "naive": run, "aiinfra": run,
              "ratios": {"rps_vs_naive": 1.0}}
    report.emit(result, fmt="table", output=tmp_path / "out.json")
    printed = capsys.readouterr().out
    assert "naive" in printed
    assert "rps_vs_naive: 1.00" in printed
    assert json.loads((tmp_path / "out.json").read_text())["naive"]["requests"] == 2


def test_merge_runs_takes_medians_and_keeps_missing_ratios_missing() -> None:
    from bench.runs import merge_runs  # noqa: PLC0415

    runs = [{"model": "m", "machine": {"cores": 2},
             "baseline": {"rps": rps, "errors_total": 1},
             "ratios": {"hit": rps / 10, "redis": None}} for rps in (10.0, 30.0, 20.0)]
    merged = merge_runs(runs)
    assert merged["baseline"] == {"rps": 20.0, "errors_total": 3}
    assert merged["ratios"] == {"hit": 2.0, "redis": None}
    assert merged["machine"] == {"cores": 2}
    assert merged["repeat"] == 3
    assert len(merged["runs"]) == 3


@pytest.mark.slow
def test_data_plane_bench_runs_every_side(scale_repository: Path, database_url: str,
                                          redis_url: str, monkeypatch, tmp_path: Path) -> None:
    from bench.dataplane import cached_copy, run_data_plane  # noqa: PLC0415
    from serving.repository import ModelRepository  # noqa: PLC0415

    copy = cached_copy(scale_repository, "scale", tmp_path / "copy")
    assert ModelRepository(copy).config("scale").cache.enabled
    assert (copy / "scale" / "1").is_symlink()

    monkeypatch.setenv("AIINFRA_MODEL_REPOSITORY", str(scale_repository))
    monkeypatch.setenv("AIINFRA_ENGINE_CACHE_DIR", str(tmp_path / "engines"))
    result = run_data_plane(model="scale", concurrency=2, payload="binary", duration_s=0.6,
                            warmup_s=0.2, batch=1, database_url=database_url,
                            redis_url=redis_url, rounds=2, control=True)
    for run in ("baseline", "predlog", "cache_hit", "cache_hit_redis"):
        assert result[run]["errors_total"] == 0, run
        assert result[run]["requests"] > 0, run
    # Every request the logging server answered is a row, no more and no fewer (review #18:
    # ">= the measured requests" held even with rows lost, warm-up being logged too).
    assert result["predlog"]["logged_rows"] == result["predlog"]["sent_total"] > 0
    assert result["predlog"]["every_request_logged"] is True
    paired = result["predlog_paired"]
    assert paired["pairs"] == 1
    assert len(paired["runs"][0]["windows"]["predlog"]) == 2
    assert result["ratios"]["predlog_rps_vs_baseline"] == paired["rps_ratio_median"] > 0
    assert result["control"]["rps_ratio_median"] > 0
    assert set(result["control"]["runs"][0]["windows"]) == {"baseline", "baseline_again"}
    assert result["ratios"]["cache_hit_redis_rps_vs_baseline"] > 0
    # Review #17: each cache side is measured against the compute path the way the log is
    # (paired, interleaved windows), not single runs against another method's baseline.
    for side in ("cache_hit", "cache_hit_redis"):
        compared = result[f"{side}_paired"]
        assert set(compared["runs"][0]["windows"]) == {"baseline", side}
        assert result["ratios"][f"{side}_rps_vs_baseline"] == compared["rps_ratio_median"]
    for run in ("baseline", "predlog"):
        assert result[run]["server_cpu_us_per_request"] > 0, run
        # A database given by URL runs elsewhere: its CPU is not the bench's to measure.
        assert "postgres_cpu_us_per_request" not in result[run], run
    assert result["predlog_cpu"]["server_us_added"] is not None
    assert result["predlog_cpu"]["postgres_us"] is None


def test_predlog_cpu_adds_server_and_database_cost() -> None:
    from bench.dataplane import predlog_cpu  # noqa: PLC0415

    cost = predlog_cpu({"server_cpu_us_per_request": 200.0},
                       {"server_cpu_us_per_request": 206.0, "postgres_cpu_us_per_request": 4.0})
    assert cost == {"server_us_added": 6.0, "postgres_us": 4.0, "total_us_added": 10.0,
                    "total_share_of_baseline_cpu": 0.05}
    assert predlog_cpu({}, {"postgres_cpu_us_per_request": 4.0})["total_us_added"] is None
    paired = predlog_cpu({"server_cpu_us_per_request": 200.0},
                         {"server_cpu_us_per_request": 206.0, "postgres_cpu_us_per_request": 4.0},
                         server_added=2.0)
    assert paired["server_us_added"] == 2.0
    assert paired["total_us_added"] == 6.0


def test_process_tree_cpu_counts_children() -> None:
    from bench.procstat import tree_cpu_seconds  # noqa: PLC0415

    busy = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"
    child = subprocess.Popen([sys.executable, "-c", busy + "\ninput()"], stdin=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while (tree_cpu_seconds(child.pid) or 0) < 0.3:
            assert time.monotonic() < deadline, "the child's CPU was never seen"
            time.sleep(0.05)
        # The child is this process's descendant: its CPU is part of this tree's.
        own = tree_cpu_seconds(os.getpid())
        assert own is not None
        assert own >= tree_cpu_seconds(child.pid)
    finally:
        child.communicate(b"\n", timeout=30)
    assert tree_cpu_seconds(child.pid) is None


@pytest.mark.slow
def test_throwaway_postgres_runs_at_the_asked_nice_level() -> None:
    from bench.stores import PostgresServer  # noqa: PLC0415

    server = PostgresServer(nice=19)
    try:
        stat = Path(f"/proc/{server.pid}/stat").read_text().rsplit(")", 1)[1].split()
        assert int(stat[16]) == 19  # the postmaster; its backends inherit it
    finally:
        server.close()


@pytest.mark.parametrize("latency_s", [0.2, 0.8])
def test_the_window_counts_what_completes_in_it(latency_s: float) -> None:
    """Review #12: requests straddling either edge of the window were dropped while the
    count was divided by the whole window, under-counting by about latency / window. Four
    workers sending back to back at a fixed latency must measure 4 / latency, on average
    over where the window's edges fall (any one window is off by up to a request a worker)."""
    from bench.loadgen import counted  # noqa: PLC0415

    rng = np.random.default_rng(0)
    workers, window_s = 4, 10.0
    rates = []
    for _ in range(300):
        measure_from = 2 * latency_s + rng.uniform(0, latency_s)  # warm-up > a latency
        stop_at = measure_from + window_s
        total = 0
        for _worker in range(workers):
            began = rng.uniform(0, latency_s)
            while began < stop_at:
                done = began + latency_s
                total += counted(began, done, measure_from, stop_at)
                began = done
        rates.append(total / window_s)
    assert np.mean(rates) == pytest.approx(workers / latency_s, rel=0.01)


def test_every_result_names_the_commit_it_was_measured_at() -> None:
    """Review #21: results without a commit could not be told from stale ones."""
    from bench.compare import machine  # noqa: PLC0415

    stamp = machine()
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert stamp["commit"] == head
    assert isinstance(stamp["dirty"], bool)
