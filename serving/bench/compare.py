"""Side by side in one run: (a) in-process batched forward, (b) naive server, (c) aiinfra."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import torch

from serving.backends import create_backend
from serving.backends.base import example_inputs
from serving.bench.loadgen import run_against
from serving.bench.stores import free_port
from serving.demo import build_demo_repository
from serving.repository import ModelRepository
from serving.settings import Settings


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    return {"cpu": _cpu_name(), "cores": os.cpu_count(),
            "python": platform.python_version(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def in_process_ceiling(repository: Path, model: str, rows: int, duration_s: float,
                       engine_cache_dir: Path) -> dict:
    """Inferences/s of back-to-back batched forwards, numpy in and out, no HTTP."""
    repo = ModelRepository(repository)
    config = repo.config(model)
    backend = create_backend(config, repo.served_versions(model, config)[-1].artifact,
                             engine_cache_dir=engine_cache_dir)
    inputs = example_inputs(config, rows)
    for _ in range(3):
        backend.forward(inputs)
    runs = 0
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < duration_s:
        backend.forward(inputs)
        runs += 1
    return {"batch": rows, "backend": backend.describe(), "batches": runs,
            "seconds": round(elapsed, 3), "inferences_per_s": runs * rows / elapsed}


@contextmanager
def serve_process(command: list[str], url: str, probe: str, env: dict[str, str] | None = None):
    """Start a server; yield its process once ``url + probe`` answers 200; stop it after."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env={**os.environ, **(env or {})})
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{command} exited: {process.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(url + probe, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{command} never became ready")
            time.sleep(0.2)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def run_compare(*, model: str, concurrency: int, payload: str, duration_s: float,
                warmup_s: float, batch: int) -> dict:
    settings = Settings()
    repository = settings.model_repository or build_demo_repository(settings.demo_repository)
    config = ModelRepository(repository).config(model)
    ceiling_rows = min(concurrency * batch, max(config.max_batch_size, 1))
    result: dict = {"model": model, "concurrency": concurrency, "payload": payload,
                    "batch": batch, "machine": machine()}
    result["ceiling"] = in_process_ceiling(repository, model, ceiling_rows, duration_s,
                                           settings.engine_cache_dir)
    load = {"model": model, "concurrency": concurrency, "payload": payload,
            "duration_s": duration_s, "warmup_s": warmup_s, "batch": batch}
    if payload == "json":
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with serve_process([sys.executable, "-m", "serving.bench.naive", "--repository",
                      str(repository), "--model", model, "--port", str(port)],
                     url, f"/v2/models/{model}"):
            result["naive"] = run_against(url, **load)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"AIINFRA_LOG_LEVEL": "warning", "AIINFRA_MODEL_REPOSITORY": str(repository)}
    with serve_process([sys.executable, "-m", "serving.cli", "serve", "--port", str(port),
                  "--load", model], url, "/v2/health/ready", env):
        result["aiinfra"] = run_against(url, **load)
    served = result["aiinfra"]
    if "naive" in result:
        naive = result["naive"]
        result["ratios"] = {"rps_vs_naive": served["rps"] / naive["rps"] if naive["rps"] else None,
                            "p99_vs_naive": served["p99_ms"] / naive["p99_ms"]
                            if naive["p99_ms"] else None}
    result.setdefault("ratios", {})["served_vs_ceiling"] = (
        served["inferences_per_s"] / result["ceiling"]["inferences_per_s"])
    return result


def merge_runs(runs: list[dict]) -> dict:
    """One result from several: each numeric figure is the median over the runs (errors add
    up), and every run is kept under ``runs``."""
    first = runs[0]
    sections = [key for key, value in first.items()
                if isinstance(value, dict) and key != "machine"]
    result = {key: value for key, value in first.items() if key not in sections}
    for section in sections:
        result[section] = median_run([run[section] for run in runs])
    result["repeat"] = len(runs)
    result["runs"] = runs
    return result


def median_run(runs: list[dict]) -> dict:
    """One load result from several: numeric figures are medians (errors add up); the rest
    is the first run's."""
    merged = dict(runs[0])
    for key, value in merged.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            values = [run[key] for run in runs if run.get(key) is not None]
            if not values:
                merged[key] = None
            elif key == "errors_total":
                merged[key] = sum(values)
            else:
                merged[key] = statistics.median(values)
    return merged


def run_repeated(repeat: int, *, runner=None, **options) -> dict:
    """``runner`` (default ``run_compare``) ``repeat`` times; headline figures are medians."""
    runs = [(runner or run_compare)(**options) for _ in range(repeat)]
    return runs[0] if repeat == 1 else merge_runs(runs)
