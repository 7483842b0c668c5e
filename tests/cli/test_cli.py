"""The one ``aiinfra`` command: mounted from each package, and honest where a package is absent."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import textwrap
from pathlib import Path

import click
import typer
from typer.testing import CliRunner

from aiinfra import cli

ROOT = Path(__file__).resolve().parents[2]
EVERY_COMMAND = ["serve", "bench", "preview", "cost", "check", "predlog", "prices"]


def visible_commands(app: typer.Typer) -> list[str]:
    group = typer.main.get_command(app)
    with click.Context(group) as ctx:
        return [name for name in group.list_commands(ctx)
                if not group.get_command(ctx, name).hidden]


def run_cli(*args: str, blocked: tuple[str, ...] = (), **options) -> subprocess.CompletedProcess:
    """``python -m aiinfra ARGS`` with the ``blocked`` packages made unimportable, as they are
    in an installation that lacks them (the serving image holds serving and aiinfra only)."""
    program = textwrap.dedent(f"""
        import sys
        for name in {blocked!r}:
            sys.modules[name] = None  # import fails; importlib.util.find_spec gives None
        sys.argv = ["aiinfra", *{list(args)!r}]
        from aiinfra.cli import main
        main()
    """)
    return subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          timeout=120, cwd=options.pop("cwd", ROOT), **options)


def test_every_package_mounts_its_commands_in_one_app() -> None:
    assert visible_commands(cli.create_app()) == EVERY_COMMAND
    assert sorted(visible_commands(__import__("serving.cli").cli.app)) == ["predlog", "serve"]
    assert visible_commands(__import__("infra.cli").cli.app) == ["preview", "cost", "prices"]


def test_console_script_is_the_mounted_app() -> None:
    scripts = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="console_scripts")
               if ep.dist is not None and ep.dist.name == "aiinfra"}
    assert scripts == {"aiinfra": "aiinfra.cli:main"}


def test_help_lists_every_command_and_serve_refuses_bad_settings(tmp_path: Path) -> None:
    help_text = subprocess.run([sys.executable, "-m", "aiinfra", "--help"], capture_output=True,
                               text=True, check=True, timeout=60).stdout
    for command in EVERY_COMMAND:
        assert f" {command} " in help_text, command
    refused = subprocess.run(
        [sys.executable, "-m", "aiinfra", "serve", "--repository", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "AIINFRA_REPOSITORY_CONTROL": "true",
             "AIINFRA_CONTROL_TOKEN": "short"})
    assert refused.returncode == 2
    assert "AIINFRA_CONTROL_TOKEN of at least 16 characters" in refused.stderr


def test_the_runtime_alone_lists_only_what_works_and_names_the_missing_extras() -> None:
    runtime_only = ("infra", "policies", "bench")
    shown = run_cli("--help", blocked=runtime_only)
    assert shown.returncode == 0, shown.stderr
    for command in ("serve", "predlog"):
        assert f" {command} " in shown.stdout, command
    for command in ("bench", "preview", "cost", "check", "prices"):
        assert f" {command} " not in shown.stdout, command

    preview = run_cli("preview", "prod", "--format", "json", blocked=runtime_only)
    assert preview.returncode == 2
    assert "`aiinfra preview` is not part of this installation" in preview.stderr
    assert "missing: infra" in preview.stderr
    assert "pip install 'aiinfra[infra]'" in preview.stderr
    bench = run_cli("bench", "--compare", blocked=runtime_only)
    assert bench.returncode == 2
    assert "pip install 'aiinfra[bench]'" in bench.stderr
    refresh = run_cli("prices", "refresh", blocked=runtime_only)
    assert refresh.returncode == 2
    assert "`aiinfra prices`" in refresh.stderr

    serve_help = run_cli("serve", "--help", blocked=runtime_only)
    assert serve_help.returncode == 0, serve_help.stderr
    assert "--repository" in serve_help.stdout


def test_without_policies_preview_still_renders_without_the_verdict() -> None:
    table = run_cli("preview", "dev", blocked=("policies",))
    assert table.returncode == 0, table.stderr
    assert "cost (USD/month" in table.stdout
    assert "policies PASS" not in table.stdout
    assert "`aiinfra check` is not part of this installation" in run_cli(
        "check", "dev", blocked=("policies",)).stderr


def test_extra_requirements_are_read_from_the_metadata() -> None:
    requires = ['torch>=2.5', 'pulumi<4,>=3.150; extra == "infra"',
                "pulumi-aws<8,>=7.0; extra == 'infra'", 'aiohttp>=3.9; extra == "bench"',
                'tritonclient[http]>=2.41; python_version >= "3.9" and extra == "dev"']
    assert cli.extra_requirements("infra", requires) == ["pulumi", "pulumi-aws"]
    assert cli.extra_requirements("bench", requires) == ["aiohttp"]
    assert cli.extra_requirements("dev", requires) == ["tritonclient"]
    assert cli.extra_requirements("gpu", requires) == []
    # The installed metadata is pyproject.toml's: every extra the mounts name is declared.
    for mount in cli.MOUNTS:
        if mount.extra:
            assert cli.extra_requirements(mount.extra), mount.extra


def test_a_missing_distribution_of_an_extra_hides_its_commands(monkeypatch) -> None:
    real = importlib.metadata.distribution

    def distribution(name: str):
        if name == "pulumi-kubernetes":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "distribution", distribution)
    app = cli.create_app()
    # The policy pack needs the same extra: `check` goes with `preview` and `cost`.
    assert visible_commands(app) == ["serve", "bench", "predlog"]
    result = CliRunner().invoke(app, ["cost", "prod", "--strict"])
    assert result.exit_code == 2
    assert "missing: pulumi-kubernetes" in result.output
    assert "the infra extra" in result.output


def test_importing_the_server_app_imports_no_other_package_nor_the_demo_builder() -> None:
    probe = ("import serving.app, sys; print(sorted(m for m in sys.modules if m.split('.')[0] "
             "in ('infra', 'policies', 'bench', 'aiinfra') or m in ('serving.demo', "
             "'serving.models.zoo')))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, timeout=120, cwd=ROOT)
    assert done.stdout.strip() == "[]"
