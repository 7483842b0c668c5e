"""The layers between the packages (pyproject.toml's import-linter contracts) hold, and break
when a package imports across them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("aiinfra", "serving", "bench", "infra", "policies")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(tree: Path) -> subprocess.CompletedProcess:
    """import-linter over the packages in ``tree`` with the repository's contracts."""
    return subprocess.run([str(LINT_IMPORTS), "--no-logo", "--no-cache", "pyproject.toml"],
                          cwd=tree, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tree), "COLUMNS": "250"})


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """The packages and pyproject.toml, copied: a tree that a test may change."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def test_the_contracts_hold(tree: Path) -> None:
    result = lint_imports(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 5 kept, 0 broken." in result.stdout


@pytest.mark.parametrize(("module", "statement", "contract"), [
    ("serving/cache/_probe.py", "import infra.render",
     "serving holds the runtime alone"),
    ("serving/_probe.py", "from bench.process import free_port",
     "serving holds the runtime alone"),
    ("serving/routes/_probe.py", "import pulumi",
     "serving holds the runtime alone"),
    ("infra/_probe.py", "from serving.settings import Settings",
     "infra is the Pulumi program"),
    ("infra/cost/_probe.py", "import policies.cli",
     "infra is the Pulumi program"),
    ("policies/_probe.py", "from infra.components import cluster",
     "policies read infra's graph"),
    ("bench/_probe.py", "import aiinfra.cli",
     "bench drives the runtime from outside"),
])
def test_an_import_across_a_layer_breaks_its_contract(tree: Path, module: str, statement: str,
                                                      contract: str) -> None:
    (tree / module).write_text(f'"""A forbidden import."""\n\n\ndef f():\n    {statement}\n')
    result = lint_imports(tree)
    assert result.returncode == 1, result.stdout
    broken = [line for line in result.stdout.splitlines() if line.endswith("BROKEN")]
    assert len(broken) == 1, result.stdout
    assert broken[0].startswith(contract), result.stdout
    assert module.removesuffix(".py").replace("/", ".") in result.stdout
