"""The build context (.dockerignore), the size reports and budgets, the digest and lock tools."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import measure
import pin_digests
import pytest
from check import (
    DOCKERFILES,
    IMAGE_DIR,
    LOCKS,
    ROOT,
    check_context,
    ignored,
    parse_dockerfile,
    read_dockerignore,
)

PATTERNS = read_dockerignore(ROOT / ".dockerignore")


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_context_carries_what_the_dockerfile_copies_and_nothing_it_must_not(kind: str) -> None:
    assert check_context(parse_dockerfile(DOCKERFILES[kind].read_text()), PATTERNS) == []


@pytest.mark.parametrize("path", ["serving/app.py", "serving/backends/tensorrt.py",
                                  "pyproject.toml", "README.md", "image/requirements-gpu.txt"])
def test_context_includes(path: str) -> None:
    assert not ignored(path, PATTERNS)


@pytest.mark.parametrize("path", [".git/HEAD", ".venv/bin/python", "tests/conftest.py",
                                  "serving/__pycache__/app.cpython-311.pyc", "serving/app.pyc",
                                  "image/Dockerfile", "image/size-gpu.json", "Makefile",
                                  "infra/config.py", "docs/BENCHMARKS.md"])
def test_context_excludes(path: str) -> None:
    assert ignored(path, PATTERNS)


def test_ignore_rules_follow_docker_semantics() -> None:
    rules = ["*", "!src/", "src/**/*.tmp", "!src/keep.tmp", "a?c", "[xy].txt"]
    assert ignored("anything", rules)
    assert not ignored("src/deep/file.py", rules)
    assert ignored("src/deep/x.tmp", rules)
    assert ignored("src/x.tmp", rules)
    assert not ignored("src/keep.tmp", rules)
    assert ignored("abc", ["a?c"])
    assert not ignored("a/c", ["a?c"])
    assert ignored("x.txt", ["[xy].txt"])
    assert not ignored("z.txt", ["[xy].txt"])


# ---- size reports and budgets ----

@pytest.mark.parametrize("kind", ["cpu", "gpu"])
def test_size_report_measures_the_current_lock(kind: str) -> None:
    report = json.loads((IMAGE_DIR / f"size-{kind}.json").read_text())
    assert report["image"] == kind
    assert report["lock_sha256"] == hashlib.sha256(LOCKS[kind].read_bytes()).hexdigest(), (
        f"stale: run python image/measure.py {kind} --report image/size-{kind}.json")
    assert report["budget_mib"] == measure.BUDGETS_MIB[kind]["layer"]


def test_cpu_image_is_within_budget() -> None:
    report = json.loads((IMAGE_DIR / "size-cpu.json").read_text())
    assert report["within_budget"]
    assert report["pip_check"] == []


def test_readme_states_the_budgets_the_tool_enforces() -> None:
    readme = (IMAGE_DIR / "README.md").read_text()
    section = readme.split("## Size budgets", 1)[1].split("\n## ", 1)[0]
    for kind, budgets in measure.BUDGETS_MIB.items():
        row = re.search(rf"^\| {kind.upper()} \|.*$", section, re.MULTILINE)
        assert row, f"README.md needs a budget row for {kind.upper()}"
        assert f"{budgets['layer']:,} MiB" in row[0]
        assert f"{budgets['image']:,} MiB" in row[0]


def _fake_docker(tmp_path: Path, script: str) -> dict[str, str]:
    docker = tmp_path / "bin" / "docker"
    docker.parent.mkdir(parents=True)
    docker.write_text("#!/bin/sh\n" + script)
    docker.chmod(docker.stat().st_mode | stat.S_IEXEC)
    return {**os.environ, "PATH": f"{docker.parent}{os.pathsep}{os.environ['PATH']}"}


def test_measure_built_compares_the_image_with_its_budget(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = _fake_docker(tmp_path, f"echo {900 * measure.MIB}\n")
    monkeypatch.setenv("PATH", env["PATH"])
    assert measure.main(["cpu", "--built", "aiinfra-serving:cpu"]) == 0
    env = _fake_docker(tmp_path / "over", f"echo {99_000 * measure.MIB}\n")
    monkeypatch.setenv("PATH", env["PATH"])
    assert measure.main(["gpu", "--built", "aiinfra-serving:gpu"]) == 1


# ---- pinning digests ----

NEW = "sha256:" + "f" * 64


def test_pin_digests_moves_each_pin_to_its_tags_digest(tmp_path: Path) -> None:
    copies = []
    for path in DOCKERFILES.values():
        copy = tmp_path / path.name
        copy.write_text(path.read_text())
        copies.append(copy)
    env = _fake_docker(tmp_path, f"""echo '{{"mediaType": "index", "digest": "{NEW}"}}'\n""")
    before = [pin_digests.pins(copy.read_text()) for copy in copies]
    assert all(before)
    tool = [sys.executable, str(IMAGE_DIR / "pin_digests.py")]
    check = subprocess.run([*tool, "--check", *map(str, copies)], env=env, capture_output=True,
                           text=True, timeout=30)
    assert check.returncode == 1
    assert "python:3.11.17-slim-bookworm sha256:2333bd330d12… -> sha256:ffffffffffff…" in (
        check.stdout)
    assert [pin_digests.pins(copy.read_text()) for copy in copies] == before
    subprocess.run([*tool, *map(str, copies)], env=env, check=True, capture_output=True,
                   timeout=30)
    for copy, pins in zip(copies, before, strict=True):
        assert pin_digests.pins(copy.read_text()) == [(tag, NEW) for tag, _ in pins]
    again = subprocess.run([*tool, "--check", *map(str, copies)], env=env, capture_output=True,
                           text=True, timeout=30)
    assert again.returncode == 0
    assert "every pin is at its tag's current digest" in again.stdout


def test_pins_are_found_in_arg_lines_and_the_syntax_directive_only() -> None:
    digest = "sha256:" + "a" * 64
    text = (f"# syntax=docker/dockerfile:1.7.1@{digest}\n"
            f"ARG BASE=docker.io/nvidia/cuda:13.0.3-base-ubuntu24.04@{digest}\n"
            f"# an example: python:3.11@{digest}\n"
            f"RUN echo python:3.11@{digest}\n")
    assert pin_digests.pins(text) == [("docker/dockerfile:1.7.1", digest),
                                      ("docker.io/nvidia/cuda:13.0.3-base-ubuntu24.04", digest)]
    moved = pin_digests.repin(text, {"docker.io/nvidia/cuda:13.0.3-base-ubuntu24.04": NEW})
    assert moved.splitlines()[1].endswith(NEW)
    assert moved.splitlines()[0] == text.splitlines()[0]
    assert moved.splitlines()[2:] == text.splitlines()[2:]


def test_lock_script_is_valid_bash_and_executable() -> None:
    script = IMAGE_DIR / "lock.sh"
    assert os.access(script, os.X_OK)
    subprocess.run(["bash", "-n", str(script)], check=True, timeout=30)
