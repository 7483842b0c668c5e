"""What the image installs: the package built from exactly what the Dockerfiles copy serves
models, and its ``aiinfra --help`` lists only the commands that work there."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import httpx
import pytest
from check import copy_installed_sources

from bench.process import free_port, loopback_url, running

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def image_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """site-packages as the CPU image's builder leaves it: a wheel of what it copies."""
    root = tmp_path_factory.mktemp("image")
    src = root / "src"
    src.mkdir()
    assert "serving" in copy_installed_sources("cpu", src)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(root / "wheel"), str(src)],
        capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (root / "wheel").glob("aiinfra-*.whl")
    site = root / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    return site


def image_command(site: Path, *args: str) -> list[str]:
    """``aiinfra ARGS`` seeing the image's packages and, for the third-party libraries the
    lock would install, this environment's site-packages, but none of this checkout."""
    program = (f"import sys; sys.path[:0] = [{str(site)!r}, {sysconfig.get_paths()['purelib']!r}]"
               f"; sys.argv = ['aiinfra', *{list(args)!r}]; from aiinfra.cli import main; main()")
    return [sys.executable, "-S", "-c", program]


def run_in_image(site: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(image_command(site, *args), capture_output=True, text=True,
                          timeout=120, cwd=site.parent)


def test_the_image_holds_the_runtime_and_the_command_alone(image_site: Path) -> None:
    packages = {path.parent.name for path in image_site.glob("*/__init__.py")}
    assert packages == {"serving", "aiinfra"}
    assert (image_site / "serving" / "predlog" / "migrations" / "0001_predictions.sql").is_file()


def test_help_in_the_image_lists_only_what_works_there(image_site: Path) -> None:
    shown = run_in_image(image_site, "--help")
    assert shown.returncode == 0, shown.stderr
    listed = {line.split()[1] for line in shown.stdout.splitlines()
              if line.startswith("│ ") and len(line.split()) > 2 and line.split()[1].isalpha()}
    assert {"serve", "predlog"} <= listed
    assert not listed & {"bench", "preview", "cost", "check", "prices"}, listed
    preview = run_in_image(image_site, "preview", "prod")
    assert preview.returncode == 2
    assert "`aiinfra preview` is not part of this installation" in preview.stderr
    assert "pip install 'aiinfra[infra]'" in preview.stderr


def test_the_image_serves_a_repository(image_site: Path, scale_repository: Path,
                                       tmp_path: Path) -> None:
    port = free_port()
    command = image_command(image_site, "serve", "--repository", str(scale_repository),
                            "--host", "127.0.0.1", "--port", str(port))
    # The gRPC server (on by default) gets a free port too, not 8001, which may be taken.
    grpc_port = next(p for p in iter(free_port, None) if p != port)
    env = {"AIINFRA_LOG_FORMAT": "text", "AIINFRA_ENGINE_CACHE_DIR": str(tmp_path / "engines"),
           "AIINFRA_GRPC_PORT": str(grpc_port), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    with running(command, loopback_url(port), env=env, inherit_env=False, timeout_s=120) as server:
        response = httpx.post(f"{server.url}/v2/models/scale/infer", timeout=30, json={
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4],
                        "data": [1.0, 2.0, 3.0, 4.0]}]})
        assert response.status_code == 200, response.text
        assert response.json()["outputs"][0]["data"] == [2.0, 4.0, 6.0, 8.0]
