"""Side by side in one run: the in-process batched forward, the HTTP floor, the naive and tuned
baselines, other servers (``bench.peers``) and aiinfra, each alone while measured."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import httpx
import torch
from prometheus_client.parser import text_string_to_metric_families

from bench.loadgen import run_against
from bench.peers import environment
from bench.process import READY_PROBE, SERVE, free_port, loopback_url, running
from bench.runs import merge_runs, ratio
from bench.wrk import run_wrk
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


def model_metadata(config) -> dict:
    """The model's V2 metadata, as aiinfra serves it (peers may not serve any)."""
    return {"name": config.name,
            "inputs": [{"name": s.name, "datatype": s.datatype, "shape": config.full_shape(s)}
                       for s in config.inputs],
            "outputs": [{"name": s.name, "datatype": s.datatype, "shape": config.full_shape(s)}
                        for s in config.outputs]}


def run_compare(*, model: str, concurrency: int, payload: str, duration_s: float,
                warmup_s: float, batch: int, generator: str = "python",
                peers: list | None = None, workers: tuple[int, ...] = (1,)) -> dict:
    """One round: every side started, measured alone and stopped in turn.

    ``generator`` is ``wrk`` (bench.wrk) or ``python`` (bench.loadgen). JSON payloads add the
    HTTP floor (bench.floor), the naive and tuned baselines and ``peers``."""
    settings = Settings()
    repository = settings.model_repository or build_demo_repository(settings.demo_repository)
    repo = ModelRepository(repository)
    config = repo.config(model)
    ceiling_rows = min(concurrency * batch, max(config.max_batch_size, 1))
    result: dict = {"model": model, "concurrency": concurrency, "payload": payload,
                    "batch": batch, "generator": generator, "machine": machine()}
    result["ceiling"] = in_process_ceiling(repository, model, ceiling_rows, duration_s,
                                           settings.engine_cache_dir)
    metadata = model_metadata(config)
    load = {"model": model, "concurrency": concurrency, "payload": payload,
            "duration_s": duration_s, "warmup_s": warmup_s, "batch": batch}

    def measure(url: str) -> dict:
        if generator == "wrk":
            return run_wrk(url, metadata=metadata, **load)
        return run_against(url, **load)

    if payload == "json":
        sides = [("floor", [sys.executable, "-m", "bench.floor"], READY_PROBE),
                 ("naive", [sys.executable, "-m", "bench.naive"], f"/v2/models/{model}"),
                 ("naive_tuned", [sys.executable, "-m", "bench.naive", "--tuned"],
                  f"/v2/models/{model}")]
        for name, command, probe in sides:
            port = free_port()
            url = loopback_url(port)
            with running([*command, "--repository", str(repository), "--model", model,
                          "--port", str(port)], url, probe=probe):
                result[name] = measure(url)
        artifact = repo.served_versions(model, config)[-1].artifact
        for peer in peers or []:
            port = free_port()
            url = loopback_url(port)
            command = peer.command(environment(peer), artifact=artifact, model=model,
                                   output=config.outputs[0].name, port=port)
            with running(command, url, probe=peer.probe):
                result[peer.name] = {**measure(url), "version": peer.version}
    env = {"AIINFRA_LOG_LEVEL": "warning", "AIINFRA_MODEL_REPOSITORY": str(repository)}
    for count in workers or (1,):
        port = free_port()
        url = loopback_url(port)
        name = "aiinfra" if count == 1 else f"aiinfra_w{count}"
        with running([*SERVE, "--port", str(port), "--load", model, "--workers", str(count)],
                     url, env=env):
            if count > 1:
                wait_for_workers(url, count)
            result[name] = {**measure(url), "workers": count,
                            "mean_batch_rows": mean_batch_rows(url, model)}
    if "aiinfra" not in result:
        return result
    served = result["aiinfra"]
    ratios: dict = {}
    if "floor" in result:
        ratios["rps_vs_floor"] = ratio(served["rps"], result["floor"]["rps"])
    for name in ("naive", "naive_tuned", *(peer.name for peer in peers or [])):
        if name in result:
            ratios[f"rps_vs_{name}"] = ratio(served["rps"], result[name]["rps"])
            ratios[f"p99_vs_{name}"] = ratio(served["p99_ms"], result[name]["p99_ms"])
    ratios["served_vs_ceiling"] = (served["inferences_per_s"]
                                   / result["ceiling"]["inferences_per_s"])
    for name in result:
        if name.startswith("aiinfra_w"):
            ratios[f"rps_{name}_vs_aiinfra"] = ratio(result[name]["rps"], served["rps"])
    result["ratios"] = ratios
    return result


def _metric_sum(text: str, name: str, model: str | None) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and (model is None or sample.labels.get("model") == model):
                total += sample.value
    return total


def mean_batch_rows(url: str, model: str) -> float | None:
    """Rows per executed batch over the server's life (every worker's, merged)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    count = _metric_sum(text, "aiinfra_batch_size_count", model)
    return _metric_sum(text, "aiinfra_batch_size_sum", model) / count if count else None


def wait_for_workers(url: str, count: int, timeout_s: float = 180) -> None:
    """Until every worker process has loaded its models: the first one ready makes the probe
    pass, and ``aiinfra_models_loaded`` sums over the live workers (one version each here)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = httpx.get(f"{url}/metrics", timeout=10).text
        if _metric_sum(text, "aiinfra_models_loaded", None) >= count:
            return
        time.sleep(0.5)
    raise RuntimeError(f"{count} workers never all loaded their model")


def run_repeated(repeat: int, *, runner=None, **options) -> dict:
    """``runner`` (default ``run_compare``) ``repeat`` times; headline figures are medians."""
    runs = [(runner or run_compare)(**options) for _ in range(repeat)]
    return runs[0] if repeat == 1 else merge_runs(runs)
