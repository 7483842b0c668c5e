"""The external cross-check: checkov on the rendered Kubernetes manifests of every stack and on
the Dockerfiles, with the skips (and their reasons) of policies/checkov.yaml."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from aiinfra.cli import app

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "policies" / "checkov.yaml"
DOCKERFILES = [ROOT / "image" / "Dockerfile", ROOT / "image" / "Dockerfile.cpu"]


def _checkov() -> str:
    found = shutil.which("checkov", path=str(Path(sys.executable).parent)) or shutil.which(
        "checkov")
    if found is None:
        pytest.skip("checkov is not installed (pip install -e '.[dev]')")
    return found


def _failures(*args: str) -> list[str]:
    completed = subprocess.run([_checkov(), "--config-file", str(CONFIG), "-o", "json", *args],
                               capture_output=True, text=True, timeout=300, check=False)
    assert completed.returncode in (0, 1), completed.stderr[-2000:]
    reports = json.loads(completed.stdout)
    failed = []
    for report in reports if isinstance(reports, list) else [reports]:
        assert report["summary"]["parsing_errors"] == 0
        assert report["summary"]["passed"] > 0
        failed += [f"{c['check_id']} {c['check_name']}: {c['resource']} ({c['file_path']})"
                   for c in report["results"]["failed_checks"]]
    return failed


def test_every_skipped_check_gives_its_reason() -> None:
    lines = CONFIG.read_text().splitlines()
    skips = yaml.safe_load(CONFIG.read_text())["skip-check"]
    assert skips
    for check in skips:
        index = lines.index(f"  - {check}")
        assert lines[index - 1].strip().startswith("#"), f"{check} is skipped without a reason"


@pytest.mark.slow
def test_checkov_passes_the_rendered_manifests_of_every_stack(tmp_path: Path) -> None:
    runner = CliRunner()
    for stack in ("dev", "staging", "prod"):
        result = runner.invoke(app, ["preview", stack, "--format", "json",
                                     "--manifests", str(tmp_path / stack)])
        assert result.exit_code == 0, result.output
        assert list((tmp_path / stack).glob("*.yaml"))
    assert _failures("-d", str(tmp_path), "--framework", "kubernetes") == []


@pytest.mark.slow
def test_checkov_passes_the_dockerfiles() -> None:
    present = [str(path) for path in DOCKERFILES if path.is_file()]
    if not present:
        pytest.skip("no Dockerfiles in image/")
    assert _failures(*(arg for path in present for arg in ("-f", path)),
                     "--framework", "dockerfile") == []
