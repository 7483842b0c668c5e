"""The infrastructure program's commands: ``preview``, ``cost`` and ``prices refresh``.

Mounted into the one ``aiinfra`` command by ``aiinfra.cli``. Each command renders the
program offline (Pulumi mocks); nothing here reaches a cloud. ``preview`` prints the table,
the cost totals and then each *footer* it was given: the policy verdict is one, passed in
by the command that mounts this app, so that this package needs nothing of ``policies``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

PreviewFooter = Callable[[Any], None]
"""Prints one line (or more) under ``preview``'s table, given the rendered graph."""


def create_app(preview_footers: Sequence[PreviewFooter] = ()) -> typer.Typer:
    """The sub-app; ``preview_footers`` run after the cost totals under the table."""
    app = typer.Typer(no_args_is_help=True, add_completion=False,
                      help="The Pulumi program, rendered offline: preview and cost.")
    footers = tuple(preview_footers)

    @app.command()
    def preview(
        stack: Annotated[str, typer.Argument(help="dev, staging or prod")] = "dev",
        fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table",
        manifests: Annotated[Path | None, typer.Option(
            help="Write every Kubernetes object as YAML into this folder")] = None,
        project_dir: Annotated[Path | None, typer.Option(
            help="Folder holding Pulumi.yaml (default: here)")] = None,
    ) -> None:
        """Render a stack offline (Pulumi mocks, no cloud) and print its resource graph."""
        from infra.config import ConfigError  # noqa: PLC0415 - keep `aiinfra --help` fast
        from infra.cost.cli import print_preview_totals  # noqa: PLC0415
        from infra.preview import print_json, print_table, write_manifests  # noqa: PLC0415
        from infra.render import render  # noqa: PLC0415

        if fmt not in ("table", "json"):
            raise typer.BadParameter("--format must be table or json")
        try:
            graph = render(stack, project_dir)
        except (ConfigError, FileNotFoundError) as exc:
            typer.secho(str(exc), err=True, fg=typer.colors.RED)
            raise typer.Exit(2) from None
        if manifests is not None:
            written = write_manifests(graph, manifests)
            typer.echo(f"wrote {len(written)} manifests to {manifests}", err=True)
        if fmt == "json":
            print_json(graph)
            return
        print_table(graph)
        if graph.stand_ins:
            typer.echo("set for the account before `pulumi up` (stood in for offline): "
                       + ", ".join(graph.stand_ins))
        print_preview_totals(graph)
        for footer in footers:
            footer(graph)

    @app.command()
    def cost(
        stack: Annotated[str, typer.Argument(help="dev, staging or prod")] = "dev",
        fmt: Annotated[str, typer.Option("--format", help="table, json or markdown")] = "table",
        diff: Annotated[str | None, typer.Option(
            "--diff", help="Baseline: another stack, or a git ref of this stack's config")] = None,
        usage: Annotated[Path | None, typer.Option(
            help="Usage file (default: infra/data/usage-STACK.yaml)")] = None,
        strict: Annotated[bool, typer.Option(
            "--strict", help="Exit 1 when any resource is unpriced")] = False,
        bench: Annotated[Path | None, typer.Option(
            help="JSON from `aiinfra bench --output`: cost per 1M inferences")] = None,
        throughput_per_node: Annotated[list[str] | None, typer.Option(
            help="Inferences/s one GPU node serves: N, or POOL=N (repeat)")] = None,
        warn_above: Annotated[str | None, typer.Option(
            help="With --diff: exit 3 when the expected monthly increase is above +$N or +N% "
                 "(default: the stack's costThresholds.warnAbove)")] = None,
        fail_above: Annotated[str | None, typer.Option(
            help="With --diff: exit 1 when the increase is above +$N or +N% "
                 "(default: costThresholds.failAbove)")] = None,
        per_1m: Annotated[bool, typer.Option(
            "--per-1m", help="Cost per 1M inferences, the preview's estimate per model")] = False,
        from_prometheus: Annotated[str | None, typer.Option(
            help="With --per-1m: Prometheus URL whose recorded cost per 1M inferences to "
                 "compare with the estimate")] = None,
        project_dir: Annotated[Path | None, typer.Option(
            help="Folder holding Pulumi.yaml (default: here)")] = None,
    ) -> None:
        """Monthly cost of a stack (min / expected / max) from the price catalogue, offline.

        Exit codes: 0 ok; 1 over budget, unpriced with --strict, or above --fail-above;
        2 bad input; 3 above --warn-above (nothing failing).
        """
        from infra.cost.cli import run_cost  # noqa: PLC0415

        raise typer.Exit(run_cost(stack, fmt=fmt, diff=diff, usage_path=usage, strict=strict,
                                  bench=bench, throughput=throughput_per_node,
                                  project_dir=project_dir, warn_above=warn_above,
                                  fail_above=fail_above, per_1m=per_1m,
                                  from_prometheus=from_prometheus))

    prices_app = typer.Typer(no_args_is_help=True, help="The price catalogue behind `cost`.")
    app.add_typer(prices_app, name="prices")

    @prices_app.command("refresh")
    def prices_refresh(
        region: Annotated[str, typer.Option(help="AWS region to price")] = "us-east-1",
        output: Annotated[Path | None, typer.Option(
            help="Catalogue to write (default: infra/data/prices-REGION.yaml)")] = None,
        spot_days: Annotated[int, typer.Option(
            min=1, help="Days of spot history to average")] = 7,
    ) -> None:
        """Rebuild instance prices from the AWS Price List API and spot price history (boto3)."""
        from infra.cost.cli import run_prices_refresh  # noqa: PLC0415

        raise typer.Exit(run_prices_refresh(region, output=output, spot_days=spot_days))

    return app


app = create_app()
"""The sub-app with no footers (``python -m infra.cli``); ``aiinfra`` mounts its own."""

if __name__ == "__main__":  # pragma: no cover
    app()
