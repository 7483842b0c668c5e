"""The GPU suite and ResNet-50: run end to end on this machine, TensorRT by capability only."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench.gpu_suite import (
    TARGETS,
    VARIANTS,
    options_for,
    parse_batch_sizes,
    tensorrt_capability,
)
from serving.models.zoo import Bottleneck, ResNet50

ROOT = Path(__file__).resolve().parents[2]


def test_resnet50_output_shape_and_parameter_count() -> None:
    torch.manual_seed(0)
    model = ResNet50().eval()
    assert sum(p.numel() for p in model.parameters()) == 25_557_032  # the paper's ~25.6 M
    assert sum(isinstance(m, Bottleneck) for m in model.modules()) == 3 + 4 + 6 + 3
    with torch.inference_mode():
        logits = model(torch.randn(2, 3, 64, 64))
    assert logits.shape == (2, 1000)
    assert torch.isfinite(logits).all()


def test_batch_sizes_and_quick_options() -> None:
    assert parse_batch_sizes("32, 1,8,8") == (1, 8, 32)
    with pytest.raises(ValueError, match="batch sizes"):
        parse_batch_sizes("0,4")
    full = options_for(quick=False)
    assert full.batch_sizes == (1, 8, 16, 32, 64)
    assert (full.ratio_batch, full.concurrency, full.max_batch_size) == (32, 64, 64)
    quick = options_for(quick=True, batch_sizes="1,2")
    assert quick.batch_sizes == (1, 2)
    assert quick.ratio_batch == 2
    assert quick.time_limit_s <= 120


def test_tensorrt_capability_follows_the_machine() -> None:
    available, reason = tensorrt_capability()
    if not torch.cuda.is_available():
        assert not available
        assert "CUDA is not available" in reason
    else:
        assert available == (reason == "")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    output = tmp_path_factory.mktemp("gpu-suite") / "suite.json"
    completed = subprocess.run(
        [sys.executable, "-m", "aiinfra", "bench", "--gpu-suite", "--quick",
         "--batch-sizes", "1,4", "--output", str(output)],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(output.read_text()), output.with_suffix(".md").read_text()


@pytest.mark.slow
def test_quick_suite_rows_and_capability_skips(quick_run: tuple[dict, str]) -> None:
    result, _ = quick_run
    assert result["command"] == (
        f"aiinfra bench --gpu-suite --quick --batch-sizes 1,4 --output "
        f"{result['command'].rsplit(' ', 1)[1]}")
    assert result["options"]["quick"] is True
    assert result["elapsed_s"] < 120
    rows = {(r["model"], r["variant"], r["batch"]): r for r in result["in_process"]}
    assert set(rows) == {(m, v, b) for m in ("resnet50", "resnet18") for v in VARIANTS
                         for b in (1, 4)}
    for model in ("resnet50", "resnet18"):
        for batch in (1, 4):
            eager = rows[model, "eager_fp32", batch]
            assert eager["status"] == "ok", eager
            assert eager["images_per_s"] > 0
            assert eager["iterations"] <= result["options"]["max_iterations"]
    assert rows["resnet18", "compile_fp32", 4]["status"] == "ok"
    assert rows["resnet50", "compile_fp32", 4]["status"] == "skipped"
    trt, reason = tensorrt_capability()
    assert result["capabilities"] == {"cuda": torch.cuda.is_available(), "tensorrt": trt,
                                      "reason": reason}
    if not trt:
        for key, row in rows.items():
            if key[1] == "tensorrt_fp16":
                assert (row["status"], row["reason"]) == ("skipped", reason)
    if not torch.cuda.is_available():
        assert all(row["status"] == "skipped" and "CUDA is not available" in row["reason"]
                   for key, row in rows.items() if key[1] == "eager_fp16")


@pytest.mark.slow
def test_quick_suite_serving_cold_start_and_targets(quick_run: tuple[dict, str]) -> None:
    result, _ = quick_run
    served = {r["run"]: r for r in result["serving"]}
    assert set(served) == {"dynamic batching", "batch 1"}
    for row in served.values():
        assert row["status"] == "ok", row
        assert row["errors_total"] == 0
        assert row["payload"] == "binary"
        assert row["concurrency"] == result["options"]["concurrency"]
        assert row["inferences_per_s"] > 0
    assert served["batch 1"]["max_batch_size"] == 1
    assert served["dynamic batching"]["max_batch_size"] >= result["options"]["concurrency"]

    cold = result["cold_start"]
    assert cold[0]["status"] == "ok"
    assert 0 < cold[0]["seconds_to_ready"] < 120
    trt, reason = tensorrt_capability()
    if not trt:
        assert cold[1]["run"] == "warm engine cache"
        assert cold[1]["status"] == "skipped"
        assert reason in cold[1]["reason"]

    ratios = result["ratios"]
    expected = (served["dynamic batching"]["inferences_per_s"]
                / served["batch 1"]["inferences_per_s"])
    assert ratios["dynamic_batching_vs_batch1"]["value"] == pytest.approx(expected)
    ceiling_key = ("served_vs_in_process_tensorrt" if trt else
                   "served_vs_in_process_eager_fp16" if torch.cuda.is_available() else
                   "served_vs_in_process_eager_fp32")
    assert ratios[ceiling_key]["value"] > 0
    targets = {t["name"]: t for t in result["targets"]}
    assert set(targets) == set(TARGETS)
    batching = targets["dynamic_batching_vs_batch1"]
    assert batching["value"] == pytest.approx(expected)
    assert batching["status"] == ("met" if expected >= 8 else "not met")
    if not trt:
        for name in ("tensorrt_fp16_vs_eager_fp32", "served_vs_in_process_tensorrt",
                     "cold_start_warm_cache_s"):
            assert (targets[name]["status"], targets[name]["reason"]) == ("skipped", reason)
            assert targets[name]["value"] is None


@pytest.mark.slow
def test_quick_suite_markdown(quick_run: tuple[dict, str]) -> None:
    result, markdown = quick_run
    assert markdown.startswith(f"# GPU suite · {result['machine']['device']}")
    assert f"torch {torch.__version__}" in markdown
    assert "torch-tensorrt" in markdown
    assert result["command"] in markdown
    for heading in ("## Targets", "## In process", "## Served over HTTP", "## Cold start"):
        assert heading in markdown
    assert "| resnet50 | eager_fp32 | 4 |" in markdown
    assert "| dynamic batching | " in markdown
    statuses = [t["status"] for t in result["targets"]]
    assert markdown.count("| skipped |") >= statuses.count("skipped")
