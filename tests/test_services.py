"""The test servers: installed by `make test`, and never silently skipped under CI."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bench.stores import StoreUnavailable
from tests.support.services import start_store

ROOT = Path(__file__).resolve().parents[1]
INSTALL = ROOT / "tests" / "support" / "install-services.sh"


class Missing:
    def __init__(self) -> None:
        raise StoreUnavailable("redis-server not found: apt-get install redis-server")


@pytest.mark.parametrize("ci", ["true", "1", "yes", "TRUE"])
def test_a_missing_server_fails_the_test_under_ci(monkeypatch, ci: str) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match="redis-server not found.*CI must have it"):
        start_store(Missing)


@pytest.mark.parametrize("ci", [None, "", "false", "0"])
def test_a_missing_server_skips_the_test_elsewhere(monkeypatch, ci: str | None) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match="make services"):
        start_store(Missing)


@pytest.mark.parametrize(("ci", "status"), [("", 0), ("true", 1)])
def test_the_installer_says_what_is_missing_where_it_cannot_install(tmp_path: Path, ci: str,
                                                                    status: int) -> None:
    # An empty PATH: no redis-server, no pg_ctl on it, and no apt-get to install them with.
    result = subprocess.run(["/bin/bash", str(INSTALL)], capture_output=True, text=True,
                            timeout=60, env={"PATH": str(tmp_path), "CI": ci})
    assert result.returncode == status, result.stderr
    assert "the test suite needs redis-server wrk nghttp2-client" in result.stderr
    assert "no apt-get on this machine" in result.stderr


def test_the_installer_does_nothing_when_all_are_there(tmp_path: Path) -> None:
    for tool in ("redis-server", "pg_ctl", "wrk", "h2load"):
        (tmp_path / tool).write_text("#!/bin/sh\n")
        (tmp_path / tool).chmod(0o755)
    result = subprocess.run(["/bin/bash", str(INSTALL)], capture_output=True, text=True,
                            timeout=60, env={"PATH": str(tmp_path), "CI": "true"})
    assert (result.returncode, result.stderr) == (0, "")
