"""Side by side in one run: (a) in-process batched forward, (b) naive server, (c) aiinfra."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

from bench.loadgen import run_against
from bench.process import SERVE, free_port, loopback_url, running
from bench.runs import merge_runs
from serving.backends import create_backend
from serving.backends.base import example_inputs
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


def source() -> dict:
    """The commit a result was measured at, and whether the code had uncommitted changes
    (None outside a git checkout)."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], check=True,
                                capture_output=True, text=True, timeout=10).stdout.strip()
        # Results written by earlier runs (docs/bench/) are data, not a change to the code.
        dirty = bool(subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                     "--untracked-files=no", "--", ".", ":!docs/bench"],
                                    check=True, capture_output=True, text=True,
                                    timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


def machine() -> dict:
    return {"cpu": _cpu_name(), "cores": os.cpu_count(),
            "python": platform.python_version(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            **source()}


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
        for name, flags in (("naive", []), ("naive_tuned", ["--tuned"])):
            port = free_port()
            url = loopback_url(port)
            with running([sys.executable, "-m", "bench.naive", "--repository", str(repository),
                          "--model", model, "--port", str(port), *flags], url,
                         probe=f"/v2/models/{model}"):
                result[name] = run_against(url, **load)
    port = free_port()
    url = loopback_url(port)
    env = {"AIINFRA_LOG_LEVEL": "warning", "AIINFRA_MODEL_REPOSITORY": str(repository)}
    with running([*SERVE, "--port", str(port), "--load", model], url, env=env):
        result["aiinfra"] = run_against(url, **load)
    served = result["aiinfra"]
    if "naive" in result:
        naive = result["naive"]
        tuned = result["naive_tuned"]
        result["ratios"] = {"rps_vs_naive": served["rps"] / naive["rps"] if naive["rps"] else None,
                            "p99_vs_naive": served["p99_ms"] / naive["p99_ms"]
                            if naive["p99_ms"] else None,
                            "rps_vs_naive_tuned": served["rps"] / tuned["rps"]
                            if tuned["rps"] else None,
                            "p99_vs_naive_tuned": served["p99_ms"] / tuned["p99_ms"]
                            if tuned["p99_ms"] else None}
    result.setdefault("ratios", {})["served_vs_ceiling"] = (
        served["inferences_per_s"] / result["ceiling"]["inferences_per_s"])
    return result


def run_repeated(repeat: int, *, runner=None, **options) -> dict:
    """``runner`` (default ``run_compare``) ``repeat`` times; headline figures are medians."""
    runs = [(runner or run_compare)(**options) for _ in range(repeat)]
    return runs[0] if repeat == 1 else merge_runs(runs)
