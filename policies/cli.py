"""``aiinfra check`` and the verdict line of ``aiinfra preview``: the offline adapter's front."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console

from policies.offline import check_graph
from policies.output import emit

FORMATS = ("table", "json", "sarif")


def run_check(stack: str, *, fmt: str = "table", project_dir: Path | None = None) -> int:
    """Render ``stack``, run every rule; 0 when no mandatory rule is violated, 1 otherwise,
    2 when the stack cannot be rendered."""
    from infra.config import ConfigError  # noqa: PLC0415 - heavy: only when checking
    from infra.render import render  # noqa: PLC0415

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
    report = check_graph(graph)
    (console or Console()).print(f"{report.summary()} (details: aiinfra check {report.stack})",
                                 style="green" if report.passed else "bold red", highlight=False,
                                 soft_wrap=True)
