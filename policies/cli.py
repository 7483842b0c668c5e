"""``aiinfra check`` and the verdict line of ``aiinfra preview``: the offline adapter's front.

``app`` holds ``check``; ``aiinfra.cli`` mounts it and hands ``print_summary`` to the
infrastructure's ``preview`` as a footer.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

FORMATS = ("table", "json", "sarif")


def run_check(stack: str, *, fmt: str = "table", project_dir: Path | None = None) -> int:
    """Render ``stack``, run every rule; 0 when no mandatory rule is violated, 1 otherwise,
    2 when the stack cannot be rendered."""
    from infra.config import ConfigError  # noqa: PLC0415 - heavy: only when checking
    from infra.render import render  # noqa: PLC0415
    from policies.offline import check_graph  # noqa: PLC0415
    from policies.output import emit  # noqa: PLC0415

    try:
        graph = render(stack, project_dir)
    except (ConfigError, FileNotFoundError) as exc:
        print(exc, file=sys.stderr)
        return 2
    report = check_graph(graph)
    emit(report, fmt)
    return 0 if report.passed else 1


def print_summary(graph: object, console: Console | None = None) -> None:
    """One line under ``aiinfra preview``'s table: the verdict, counted."""
    from policies.offline import check_graph  # noqa: PLC0415 - imports every rule

    report = check_graph(graph)
    (console or Console()).print(f"{report.summary()} (details: aiinfra check {report.stack})",
                                 style="green" if report.passed else "bold red", highlight=False,
                                 soft_wrap=True)


app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="The policy pack, run offline on a rendered stack.")


@app.command()
def check(
    stack: Annotated[str, typer.Argument(help="dev, staging or prod")] = "dev",
    fmt: Annotated[str, typer.Option("--format", help="table, json or sarif")] = "table",
    project_dir: Annotated[Path | None, typer.Option(
        help="Folder holding Pulumi.yaml (default: here)")] = None,
) -> None:
    """Run the policy pack on a stack offline; exit 1 on any mandatory violation."""
    if fmt not in FORMATS:
        raise typer.BadParameter(f"--format must be one of {', '.join(FORMATS)}")
    raise typer.Exit(run_check(stack, fmt=fmt, project_dir=project_dir))


if __name__ == "__main__":  # pragma: no cover
    app()
