"""The GPU suite: in-process and served throughput of ResNets, cold start, and the targets.

One run builds ``resnet18`` and ``resnet50`` into a temporary repository (``torch.export`` with
a dynamic batch), then measures, each step bounded in iterations and time:

- in process, at each batch size: eager FP32, eager FP16 (CUDA), ``torch.compile`` and
  TensorRT FP16 (CUDA + torch-tensorrt, built by the serving TensorRT backend);
- aiinfra serving ``resnet50`` over HTTP with binary tensors at one concurrency, with dynamic
  batching and with ``max_batch_size: 1``, on the best backend this machine has;
- cold start (process start to ready) without and with a warm TensorRT engine cache.

It writes one JSON and one markdown file and checks the targets where their inputs exist.
What the machine cannot run is reported as skipped with the reason, never faked.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.metadata
import importlib.util
import json
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import torch
import yaml

from bench.compare import machine
from bench.loadgen import run_against
from bench.process import SERVE, free_port, loopback_url, running
from serving.backends.base import load_module
from serving.demo import export_model
from serving.models.zoo import ResNet18, ResNet50
from serving.repository.config import ModelConfig

MODELS: dict[str, Callable[[], torch.nn.Module]] = {"resnet18": ResNet18, "resnet50": ResNet50}
SERVED = "resnet50"
SERVED_BATCH1 = "resnet50_b1"
VARIANTS = ("eager_fp32", "eager_fp16", "compile_fp32", "tensorrt_fp16")
TARGETS = {
    "tensorrt_fp16_vs_eager_fp32": (3.3, ">="),
    "served_vs_in_process_tensorrt": (0.85, ">="),
    "dynamic_batching_vs_batch1": (8.0, ">="),
    "cold_start_warm_cache_s": (10.0, "<="),
}


@dataclass(frozen=True)
class SuiteOptions:
    batch_sizes: tuple[int, ...] = (1, 8, 16, 32, 64)
    models: tuple[str, ...] = ("resnet50", "resnet18")
    image_size: int = 224
    ratio_batch: int = 32
    seconds_per_point: float = 1.0
    max_iterations: int = 500
    warmup_iterations: int = 3
    compile_models: tuple[str, ...] | None = None  # None: every model
    concurrency: int = 64
    serve_duration_s: float = 10.0
    serve_warmup_s: float = 3.0
    start_timeout_s: float = 420.0
    time_limit_s: float = 450.0
    quick: bool = False
    command: str = ""

    @classmethod
    def quick_cpu(cls, **overrides) -> SuiteOptions:
        """Small sizes that finish on a 2-core CPU in well under two minutes."""
        base = cls(batch_sizes=(1, 4), image_size=64, ratio_batch=4, seconds_per_point=0.25,
                   max_iterations=50, warmup_iterations=1, compile_models=("resnet18",),
                   concurrency=8, serve_duration_s=1.5, serve_warmup_s=0.5,
                   start_timeout_s=120.0, time_limit_s=110.0, quick=True)
        return replace(base, **overrides)

    @property
    def max_batch_size(self) -> int:
        return max(*self.batch_sizes, self.concurrency)


def tensorrt_capability() -> tuple[bool, str]:
    """Whether TensorRT can run here, and if not, why (the reason every skipped row carries)."""
    if not torch.cuda.is_available():
        return False, "CUDA is not available (torch.cuda.is_available() is False)"
    if importlib.util.find_spec("torch_tensorrt") is None:
        return False, "torch_tensorrt is not importable (pip install 'aiinfra[gpu]')"
    return True, ""


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


class _Clock:
    def __init__(self, limit_s: float) -> None:
        self.started = time.monotonic()
        self.limit_s = limit_s

    def left(self) -> float:
        return self.limit_s - (time.monotonic() - self.started)

    def out(self) -> str | None:
        return f"suite time limit ({self.limit_s:.0f} s) reached" if self.left() <= 0 else None


# --- the repository -----------------------------------------------------------------------

def model_config(options: SuiteOptions, *, max_batch_size: int, backend: str, precision: str
                 ) -> dict:
    size = options.image_size
    config = {
        "backend": backend,
        "precision": precision,
        "max_batch_size": max_batch_size,
        "max_queue_delay_ms": 2 if max_batch_size > 1 else 0,  # batch 1: no wait
        "max_queue_size": max(4 * options.concurrency, 128),
        "default_timeout_ms": 120000,
        "inputs": [{"name": "image", "datatype": "FP32", "dims": [3, size, size]}],
        "outputs": [{"name": "logits", "datatype": "FP32", "dims": [1000]}],
        "warmup": {"batch_sizes": sorted({1, max_batch_size})},
    }
    if backend == "tensorrt" and max_batch_size > 1:
        config["tensorrt"] = {"opt_batch_size": max(2, min(options.ratio_batch, max_batch_size))}
    return config


def served_backend() -> tuple[str, str]:
    """(backend, precision) the server uses: TensorRT FP16, else eager FP16 on CUDA, else eager."""
    if tensorrt_capability()[0]:
        return "tensorrt", "fp16"
    if torch.cuda.is_available():
        return "eager", "fp16"
    return "eager", "fp32"


def build_repository(root: Path, options: SuiteOptions) -> Path:
    """Export every model with a dynamic batch; ``resnet50_b1`` serves the same file unbatched."""
    size, top = options.image_size, options.max_batch_size
    backend, precision = served_backend()
    for name in options.models:
        torch.manual_seed(0)
        export_model(MODELS[name](), torch.randn(2, 3, size, size), top,
                     root / name / "1" / "model.pt2")
        config = model_config(options, max_batch_size=top, backend=backend, precision=precision)
        (root / name / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    if SERVED in options.models:
        (root / SERVED_BATCH1 / "1").mkdir(parents=True)
        shutil.copy(root / SERVED / "1" / "model.pt2", root / SERVED_BATCH1 / "1" / "model.pt2")
        config = model_config(options, max_batch_size=1, backend=backend, precision=precision)
        (root / SERVED_BATCH1 / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root


# --- in process -----------------------------------------------------------------------------

def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(fn: Callable, example: torch.Tensor, options: SuiteOptions, clock: _Clock) -> dict:
    """Back-to-back forwards of one batch, bounded by ``seconds_per_point`` and iterations."""
    device = example.device
    budget = max(min(options.seconds_per_point, clock.left()), 0.0)
    with torch.inference_mode():
        for _ in range(options.warmup_iterations):
            fn(example)
        _sync(device)
        iterations, started = 0, time.perf_counter()
        while iterations < options.max_iterations:
            fn(example)
            iterations += 1
            if time.perf_counter() - started >= budget:
                break
        _sync(device)
        elapsed = time.perf_counter() - started
    batch = example.shape[0]
    return {"iterations": iterations, "seconds": round(elapsed, 4),
            "images_per_s": iterations * batch / elapsed, "ms_per_batch": 1000 * elapsed /
            iterations}


def _row(model: str, variant: str, batch: int, status: str, reason: str = "", **values) -> dict:
    return {"model": model, "variant": variant, "batch": batch, "status": status,
            "reason": reason, **values}


def _variant_unavailable(variant: str, model: str, options: SuiteOptions,
                         trt: tuple[bool, str]) -> str | None:
    if variant == "eager_fp16" and not torch.cuda.is_available():
        return "CUDA is not available: FP16 convolutions are measured on the GPU only"
    if variant == "tensorrt_fp16" and not trt[0]:
        return trt[1]
    if variant == "compile_fp32" and options.compile_models is not None \
            and model not in options.compile_models:
        return "--quick: torch.compile is measured for " + ", ".join(options.compile_models)
    return None


def _build_variant(variant: str, model: str, artifact: Path, device: torch.device,
                   options: SuiteOptions, workdir: Path) -> tuple[Callable, torch.dtype, dict]:
    if variant == "tensorrt_fp16":
        from serving.backends.tensorrt import TensorRTBackend  # noqa: PLC0415 - GPU only

        config = model_config(options, max_batch_size=options.max_batch_size,
                              backend="tensorrt", precision="fp16")
        config.pop("warmup")
        started = time.perf_counter()
        backend = TensorRTBackend(ModelConfig(name=model, **config), artifact, device,
                                  workdir / "engines-in-process")
        return backend._fn, torch.float16, {"build_s": round(time.perf_counter() - started, 2)}
    module = load_module(artifact).to(device)
    if variant == "eager_fp16":
        return module.half(), torch.float16, {}
    if variant == "compile_fp32":
        return torch.compile(module, dynamic=True), torch.float32, {}
    return module, torch.float32, {}


def run_in_process(repository: Path, options: SuiteOptions, clock: _Clock,
                   workdir: Path) -> list[dict]:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    trt = tensorrt_capability()
    size = options.image_size
    rows: list[dict] = []
    for model in options.models:
        artifact = repository / model / "1" / "model.pt2"
        for variant in VARIANTS:
            reason = _variant_unavailable(variant, model, options, trt) or clock.out()
            if reason:
                rows += [_row(model, variant, b, "skipped", reason) for b in options.batch_sizes]
                continue
            try:
                fn, dtype, extra = _build_variant(variant, model, artifact, device, options,
                                                  workdir)
            except Exception as exc:  # noqa: BLE001 - one failed variant must not end the suite
                rows += [_row(model, variant, b, "error", f"build failed: {exc!r}"[:500])
                         for b in options.batch_sizes]
                continue
            for batch in options.batch_sizes:
                if reason := clock.out():
                    rows.append(_row(model, variant, batch, "skipped", reason))
                    continue
                example = torch.randn(batch, 3, size, size, device=device, dtype=dtype)
                try:
                    result = measure(fn, example, options, clock)
                except Exception as exc:  # noqa: BLE001
                    rows.append(_row(model, variant, batch, "error", repr(exc)[:500]))
                    continue
                rows.append(_row(model, variant, batch, "ok", device=str(device),
                                 dtype=str(dtype).removeprefix("torch."), **result, **extra))
            del fn
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return rows


# --- serving --------------------------------------------------------------------------------

@contextlib.contextmanager
def serve(repository: Path, model: str, engine_cache: Path, timeout_s: float,
          log_path: Path) -> Iterator[tuple[str, float]]:
    """Start ``aiinfra serve`` for one model; yield its URL and seconds from start to ready."""
    port = free_port()
    url = loopback_url(port)
    env = {"AIINFRA_LOG_LEVEL": "warning", "AIINFRA_MODEL_REPOSITORY": str(repository),
           "AIINFRA_ENGINE_CACHE_DIR": str(engine_cache)}
    with running([*SERVE, "--host", "127.0.0.1", "--port", str(port), "--load", model], url,
                 env=env, log_path=log_path, timeout_s=timeout_s) as server:
        yield url, server.ready_s


def run_serving(repository: Path, options: SuiteOptions, clock: _Clock, workdir: Path
                ) -> tuple[list[dict], list[dict]]:
    """Served throughput (batched and batch-1) and cold starts, each in its own server."""
    backend, precision = served_backend()
    trt = tensorrt_capability()
    served = f"{backend} {precision}"
    engines = workdir / "engines-served"
    serving: list[dict] = []
    cold: list[dict] = []
    load = {"concurrency": options.concurrency, "payload": "binary", "batch": 1}

    def drive(url: str, model: str) -> dict:
        duration = max(min(options.serve_duration_s, clock.left() - options.serve_warmup_s), 0.5)
        return run_against(url, model=model, duration_s=duration,
                           warmup_s=options.serve_warmup_s, **load)

    def serving_row(name: str, model: str, max_batch: int, status: str, reason: str = "",
                    result: dict | None = None) -> dict:
        row = {"run": name, "model": model, "backend": served, "max_batch_size": max_batch,
               "concurrency": options.concurrency, "payload": "binary", "status": status,
               "reason": reason}
        if result is not None:
            row.update({k: result[k] for k in ("requests", "errors_total", "seconds", "rps",
                                               "inferences_per_s", "p50_ms", "p95_ms",
                                               "p99_ms")})
        return row

    def cold_row(name: str, status: str, reason: str = "", seconds: float | None = None
                 ) -> dict:
        return {"run": name, "model": SERVED, "backend": served, "status": status,
                "reason": reason, "seconds_to_ready": seconds}

    if SERVED not in options.models:
        reason = f"{SERVED} is not among --models"
        return ([serving_row("dynamic batching", SERVED, options.max_batch_size, "skipped",
                             reason),
                 serving_row("batch 1", SERVED_BATCH1, 1, "skipped", reason)],
                [cold_row("no engine cache", "skipped", reason),
                 cold_row("warm engine cache", "skipped", reason)])

    # 1. A fresh engine cache: cold start (TensorRT builds the engine), then batched load.
    try:
        if reason := clock.out():
            raise TimeoutError(reason)
        with serve(repository, SERVED, engines, min(options.start_timeout_s, clock.left()),
                   workdir / "server-cold.log") as (url, seconds):
            cold.append(cold_row("no engine cache" if backend == "tensorrt"
                                 else f"{backend} (no engine to cache)", "ok", seconds=seconds))
            result = drive(url, SERVED)
            serving.append(serving_row("dynamic batching", SERVED, options.max_batch_size,
                                       "ok" if not result["errors_total"] else "error",
                                       "" if not result["errors_total"] else
                                       f"{result['errors_total']} failed requests", result))
    except (RuntimeError, TimeoutError, OSError) as exc:
        status = "skipped" if isinstance(exc, TimeoutError) else "error"
        cold.append(cold_row("no engine cache", status, str(exc)[:500]))
        serving.append(serving_row("dynamic batching", SERVED, options.max_batch_size, status,
                                   str(exc)[:500]))

    # 2. The same engine cache again: only TensorRT has an engine to reuse.
    if backend != "tensorrt":
        cold.append(cold_row("warm engine cache", "skipped", f"no TensorRT: {trt[1]}"))
    else:
        try:
            if reason := clock.out():
                raise TimeoutError(reason)
            with serve(repository, SERVED, engines, min(options.start_timeout_s, clock.left()),
                       workdir / "server-warm.log") as (_, seconds):
                cold.append(cold_row("warm engine cache", "ok", seconds=seconds))
        except (RuntimeError, TimeoutError, OSError) as exc:
            cold.append(cold_row("warm engine cache", "skipped"
                                 if isinstance(exc, TimeoutError) else "error", str(exc)[:500]))

    # 3. The same model with max_batch_size 1, at the same concurrency.
    try:
        if reason := clock.out():
            raise TimeoutError(reason)
        with serve(repository, SERVED_BATCH1, engines, min(options.start_timeout_s,
                   clock.left()), workdir / "server-batch1.log") as (url, _):
            result = drive(url, SERVED_BATCH1)
            serving.append(serving_row("batch 1", SERVED_BATCH1, 1,
                                       "ok" if not result["errors_total"] else "error",
                                       "" if not result["errors_total"] else
                                       f"{result['errors_total']} failed requests", result))
    except (RuntimeError, TimeoutError, OSError) as exc:
        serving.append(serving_row("batch 1", SERVED_BATCH1, 1, "skipped"
                                   if isinstance(exc, TimeoutError) else "error",
                                   str(exc)[:500]))
    return serving, cold


# --- ratios and targets ---------------------------------------------------------------------

def _find(rows: list[dict], **match) -> dict | None:
    for row in rows:
        if row["status"] == "ok" and all(row.get(k) == v for k, v in match.items()):
            return row
    return None


def compute_targets(result: dict, options: SuiteOptions) -> tuple[dict, list[dict]]:
    """Every ratio whose inputs were measured, and each target met / not met / skipped."""
    rows, serving, cold = result["in_process"], result["serving"], result["cold_start"]
    trt_ok, trt_reason = tensorrt_capability()
    ratios: dict[str, dict] = {}
    batch = options.ratio_batch
    eager = _find(rows, model=SERVED, variant="eager_fp32", batch=batch)
    for variant in ("eager_fp16", "compile_fp32", "tensorrt_fp16"):
        other = _find(rows, model=SERVED, variant=variant, batch=batch)
        if eager and other:
            ratios[f"{variant}_vs_eager_fp32"] = {
                "value": other["images_per_s"] / eager["images_per_s"], "model": SERVED,
                "batch": batch}
    batched = _find(serving, run="dynamic batching")
    single = _find(serving, run="batch 1")
    if batched and single and single["inferences_per_s"]:
        ratios["dynamic_batching_vs_batch1"] = {
            "value": batched["inferences_per_s"] / single["inferences_per_s"],
            "concurrency": options.concurrency, "backend": batched["backend"]}
    if batched:
        # The in-process row of the backend the server ran, at the largest batch it can form.
        variant = {"tensorrt fp16": "tensorrt_fp16", "eager fp16": "eager_fp16"}.get(
            batched["backend"], "eager_fp32")
        sizes = [b for b in options.batch_sizes if b <= options.max_batch_size]
        ceiling = _find(rows, model=SERVED, variant=variant, batch=max(sizes)) if sizes else None
        if ceiling:
            key = ("served_vs_in_process_tensorrt" if variant == "tensorrt_fp16"
                   else f"served_vs_in_process_{variant}")
            ratios[key] = {"value": batched["inferences_per_s"] / ceiling["images_per_s"],
                           "in_process_variant": variant, "in_process_batch": ceiling["batch"]}
    warm = _find(cold, run="warm engine cache")
    if warm:
        ratios["cold_start_warm_cache_s"] = {"value": warm["seconds_to_ready"]}

    why = {
        "tensorrt_fp16_vs_eager_fp32": trt_reason,
        "served_vs_in_process_tensorrt": trt_reason,
        "cold_start_warm_cache_s": trt_reason,
        "dynamic_batching_vs_batch1": "a serving run did not complete",
    }
    labels = {
        "tensorrt_fp16_vs_eager_fp32": f"TensorRT FP16 / eager FP32, {SERVED}, batch {batch}",
        "served_vs_in_process_tensorrt": "served / in-process TensorRT throughput",
        "dynamic_batching_vs_batch1": f"dynamic batching / batch-1 serving, concurrency "
                                      f"{options.concurrency}",
        "cold_start_warm_cache_s": "cold start with a warm engine cache (s)",
    }
    targets = []
    for name, (bound, op) in TARGETS.items():
        entry = {"name": name, "description": labels[name], "target": f"{op} {bound:g}",
                 "value": None, "status": "skipped", "reason": ""}
        if name in ratios:
            value = ratios[name]["value"]
            met = value >= bound if op == ">=" else value <= bound
            entry.update(value=value, status="met" if met else "not met")
            if not trt_ok:
                entry["reason"] = "measured without a GPU; the target is for TensorRT on a GPU"
        else:
            entry["reason"] = (why[name] if not trt_ok or name == "dynamic_batching_vs_batch1"
                               else "an input was not measured (see the rows)")
        targets.append(entry)
    return ratios, targets


# --- report ---------------------------------------------------------------------------------

def _fmt(value: float | None, spec: str = ",.1f") -> str:
    return "–" if value is None else format(value, spec)


def to_markdown(result: dict) -> str:
    info, options, caps = result["machine"], result["options"], result["capabilities"]
    lines = [
        f"# GPU suite · {info['device']}", "",
        f"- device: {info['device']}",
        f"- torch {info['torch']} · torch-tensorrt {info['torch_tensorrt'] or 'not installed'}"
        f" · Python {info['python']}",
        "- TensorRT: " + ("available" if caps["tensorrt"] else f"skipped: {caps['reason']}"),
        f"- image {options['image_size']}×{options['image_size']}, batch sizes "
        f"{', '.join(map(str, options['batch_sizes']))}, concurrency {options['concurrency']}"
        + (" (quick)" if options["quick"] else ""),
        f"- {result['started_at']}, {result['elapsed_s']:.1f} s", "",
        "```bash", result["command"], "```", "",
        "## Targets", "",
        "| target | value | bound | status | note |", "|---|---:|---:|---|---|",
    ]
    for t in result["targets"]:
        lines.append(f"| {t['description']} | {_fmt(t['value'], '.2f')} | {t['target']} | "
                     f"{t['status']} | {t['reason']} |")
    lines += ["", "## In process (images/s)", "",
              "| model | variant | batch | images/s | ms/batch | status |",
              "|---|---|---:|---:|---:|---|"]
    for r in result["in_process"]:
        status = r["status"] if r["status"] == "ok" else f"{r['status']}: {r['reason']}"
        lines.append(f"| {r['model']} | {r['variant']} | {r['batch']} | "
                     f"{_fmt(r.get('images_per_s'))} | {_fmt(r.get('ms_per_batch'), '.2f')} | "
                     f"{status} |")
    lines += ["", "## Served over HTTP (binary tensors)", "",
              "| run | backend | max batch | concurrency | inferences/s | p50 ms | p99 ms | "
              "errors | status |", "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in result["serving"]:
        status = r["status"] if r["status"] == "ok" else f"{r['status']}: {r['reason']}"
        lines.append(f"| {r['run']} | {r['backend']} | {r['max_batch_size']} | "
                     f"{r['concurrency']} | {_fmt(r.get('inferences_per_s'))} | "
                     f"{_fmt(r.get('p50_ms'), '.2f')} | {_fmt(r.get('p99_ms'), '.2f')} | "
                     f"{r.get('errors_total', '–')} | {status} |")
    lines += ["", "## Cold start (process start to ready)", "",
              "| run | backend | seconds | status |", "|---|---|---:|---|"]
    for r in result["cold_start"]:
        status = r["status"] if r["status"] == "ok" else f"{r['status']}: {r['reason']}"
        lines.append(f"| {r['run']} | {r['backend']} | {_fmt(r['seconds_to_ready'], '.2f')} | "
                     f"{status} |")
    return "\n".join(lines) + "\n"


def run_suite(options: SuiteOptions, output: Path) -> dict:
    """Run everything, write ``output`` (JSON) and ``output`` with ``.md``; return the result."""
    clock = _Clock(options.time_limit_s)
    trt_ok, trt_reason = tensorrt_capability()
    info = machine()
    info.update(device=info["gpu"] or info["cpu"],
                torch_tensorrt=_version("torch-tensorrt") or _version("torch_tensorrt"),
                tensorrt=_version("tensorrt"))
    result: dict = {
        "suite": "gpu", "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": options.command or shlex.join(["aiinfra", *sys.argv[1:]]),
        "machine": info,
        "capabilities": {"cuda": torch.cuda.is_available(), "tensorrt": trt_ok,
                         "reason": trt_reason},
        "options": {**asdict(options), "max_batch_size": options.max_batch_size},
    }
    workdir = Path(tempfile.mkdtemp(prefix="aiinfra-gpu-suite-"))
    try:
        repository = build_repository(workdir / "repository", options)
        result["in_process"] = run_in_process(repository, options, clock, workdir)
        result["serving"], result["cold_start"] = run_serving(repository, options, clock,
                                                              workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result["ratios"], result["targets"] = compute_targets(result, options)
    result["elapsed_s"] = round(time.monotonic() - clock.started, 2)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    output.with_suffix(".md").write_text(to_markdown(result))
    return result


def parse_batch_sizes(text: str) -> tuple[int, ...]:
    sizes = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    if not sizes or sizes[0] < 1 or sizes[-1] > 256:
        raise ValueError(f"batch sizes {text!r}: give sizes from 1 to 256, e.g. 1,8,16,32,64")
    return sizes


def options_for(*, quick: bool, batch_sizes: str | None = None, command: str = "",
                **overrides) -> SuiteOptions:
    """Full defaults on a GPU; ``quick`` picks the small CPU sizes."""
    options = SuiteOptions.quick_cpu() if quick else SuiteOptions()
    if batch_sizes:
        sizes = parse_batch_sizes(batch_sizes)
        overrides.setdefault("ratio_batch", options.ratio_batch if options.ratio_batch in sizes
                             else max(sizes))
        overrides["batch_sizes"] = sizes
    return replace(options, command=command, **{k: v for k, v in overrides.items()
                                                 if v is not None})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_suite",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Small sizes for a CPU")
    parser.add_argument("--batch-sizes", help="e.g. 1,8,16,32,64")
    parser.add_argument("--concurrency", type=int)
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--time-limit", type=float, dest="time_limit_s")
    parser.add_argument("--output", type=Path, default=Path("gpu-suite.json"))
    args = parser.parse_args(argv)
    command = shlex.join(["python", "-m", "bench.gpu_suite",
                          *(sys.argv[1:] if argv is None else argv)])
    options = options_for(quick=args.quick, batch_sizes=args.batch_sizes, command=command,
                          concurrency=args.concurrency, image_size=args.image_size,
                          time_limit_s=args.time_limit_s)
    result = run_suite(options, args.output)
    print(to_markdown(result))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
