"""The lock files: pinned, hashed, in step with pyproject.toml and with the Makefile's torch."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from check import LOCKS, ROOT, check_lock, check_lock_covers, read_lock

TORCH_VERSION = re.search(r"^TORCH_VERSION \?= (\S+)$", (ROOT / "Makefile").read_text(),
                          re.MULTILINE)[1]


@pytest.mark.parametrize("kind", sorted(LOCKS))
def test_lock_pins_every_package_with_sha256_hashes(kind: str) -> None:
    lock = read_lock(LOCKS[kind])
    assert check_lock(lock) == []
    assert len(lock.pins) >= 3


@pytest.mark.parametrize(("kind", "extras"), [("cpu", ()), ("gpu", ("gpu",))])
def test_lock_covers_every_declared_dependency(kind: str, extras: tuple[str, ...]) -> None:
    assert check_lock_covers(read_lock(LOCKS[kind]), ROOT / "pyproject.toml", extras) == []


def test_cpu_lock_has_the_cpu_build_of_the_makefiles_torch_and_no_cuda() -> None:
    pins = read_lock(LOCKS["cpu"]).pins
    assert pins["torch"] == f"{TORCH_VERSION}+cpu"
    cuda = [name for name in pins if name.startswith(("nvidia-", "cuda-", "triton", "tensorrt"))]
    assert cuda == []


def test_cpu_lock_takes_wheels_only() -> None:
    assert "\n--only-binary :all:\n" in LOCKS["cpu"].read_text()


def test_gpu_lock_has_the_makefiles_torch_with_torch_tensorrt_of_the_same_minor() -> None:
    pins = read_lock(LOCKS["gpu"]).pins
    assert pins["torch"] == TORCH_VERSION
    assert pins["torch-tensorrt"].split(".")[:2] == TORCH_VERSION.split(".")[:2]


def test_build_lock_pins_the_builder_tools() -> None:
    assert {"uv", "setuptools", "wheel"} <= set(read_lock(LOCKS["build"]).pins)


@pytest.mark.xfail(strict=True, reason="tensorrt-cu13-libs is on pypi.nvidia.com only; "
                   "regenerate with image/lock.sh gpu where it is reachable (image/README.md)")
def test_gpu_lock_is_complete() -> None:
    lock = read_lock(LOCKS["gpu"])
    assert not lock.incomplete
    assert "tensorrt-cu13-libs" in lock.pins


def test_read_lock_reports_what_uv_left_out(tmp_path: Path) -> None:
    path = tmp_path / "requirements.txt"
    path.write_text(
        "# INCOMPLETE: see below\n"
        "--only-binary :all:\n\n"
        "Foo_Bar[extra]==1.2.3+cpu \\\n"
        f"    --hash=sha256:{'a' * 64} \\\n"
        f"    --hash=sha256:{'b' * 64}\n"
        "    # via x\n"
        "baz==2.0 \\\n"
        "    --hash=md5:0123\n\n"
        "# The following packages were excluded from the output:\n"
        "# Tensorrt_CU13-libs\n"
    )
    lock = read_lock(path)
    assert lock.pins == {"foo-bar": "1.2.3+cpu", "baz": "2.0"}
    assert lock.hashes["foo-bar"] == [f"sha256:{'a' * 64}", f"sha256:{'b' * 64}"]
    assert lock.excluded == ["tensorrt-cu13-libs"]
    assert lock.incomplete
    assert check_lock(lock) == ["baz needs sha256 hashes (uv pip compile --generate-hashes)"]


def test_check_lock_covers_names_drift(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\ndependencies = ["numpy>=2", "redis>=5"]\n'
                         '[project.optional-dependencies]\ngpu = ["torch-tensorrt>=2.13,<2.14"]\n')
    lock = tmp_path / "requirements.txt"
    lock.write_text(f"numpy==1.26.4 --hash=sha256:{'c' * 64}\n")
    assert check_lock_covers(read_lock(lock), pyproject, ("gpu",)) == [
        "numpy==1.26.4 is outside >=2: run image/lock.sh",
        "redis is declared in pyproject.toml but not locked: run image/lock.sh",
        "torch-tensorrt is declared in pyproject.toml but not locked: run image/lock.sh",
    ]
