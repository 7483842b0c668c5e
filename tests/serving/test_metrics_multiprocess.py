"""Metrics with several workers (review #7): a dead worker's live gauges leave the merged
view, and a directory left by an earlier run is emptied before workers start."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from serving.metrics import ServingMetrics, prepare_multiprocess_dir

WORKER = """
import sys
from serving.metrics import ServingMetrics
metrics = ServingMetrics()
metrics.queue_depth.labels("scale").set(float(sys.argv[1]))
metrics.requests.labels("scale", "success", "http").inc()
if sys.argv[2] == "stay":
    print("ready", flush=True)
    sys.stdin.read()
"""


def _sample(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_a_dead_workers_gauges_leave_and_its_counters_stay(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-c", WORKER, "5", "exit"], check=True, env=env)
    alive = subprocess.Popen([sys.executable, "-c", WORKER, "2", "stay"], env=env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert alive.stdout.readline().strip() == "ready"
        text = ServingMetrics.__new__(ServingMetrics).render()[0].decode()
        # Only the live worker's queue counts (the dead one's 5 was the autoscaler's input
        # forever); what the dead one served is still history.
        assert _sample(text, "aiinfra_queue_depth") == 2.0
        assert _sample(text, "aiinfra_inference_requests_total") == 2.0
    finally:
        alive.communicate("")
    text = ServingMetrics.__new__(ServingMetrics).render()[0].decode()
    assert _sample(text, "aiinfra_queue_depth") in (None, 0.0)


def test_a_stale_directory_is_emptied_at_start(tmp_path: Path) -> None:
    (tmp_path / "gauge_livesum_4242.db").write_bytes(b"x")
    (tmp_path / "counter_4242.db").write_bytes(b"x")
    prepare_multiprocess_dir(tmp_path)
    assert list(tmp_path.iterdir()) == []
    missing = tmp_path / "made"
    prepare_multiprocess_dir(missing)
    assert missing.is_dir()


def test_a_directory_holding_anything_else_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a metrics directory"):
        prepare_multiprocess_dir(tmp_path)
    assert (tmp_path / "notes.txt").exists()
