"""Cost reports as a table (rich), JSON or Markdown, and the one-line totals for preview."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from infra.cost.model import LineItem, Range, Report

if TYPE_CHECKING:
    from rich.console import Console

    from infra.cost.inference import UnitCosts

UNIT_LABEL = {"hour": "h", "month": "mo", "gb": "GB", "gb-month": "GB-mo",
              "1m-requests": "M req"}


def usd(value: float | None, *, signed: bool = False) -> str:
    if value is None:
        return "-"
    text = f"${abs(value):,.2f}"
    if signed:
        return ("+" if value >= 0 else "-") + text
    return ("-" if value < 0 else "") + text


def usd_fine(value: float | None) -> str:
    """Dollars with four decimals below $10 (cost per 1M inferences is often cents)."""
    if value is None:
        return "-"
    return f"${value:,.4f}" if abs(value) < 10 else usd(value)


def unit_price(line: LineItem) -> str:
    if line.unit_price is None:
        return "-"
    price = line.unit_price.expected
    text = f"{price:.6f}".rstrip("0")
    if len(text.split(".")[1]) < 2:
        text = f"{price:.2f}"
    suffix = " avg" if line.unit_price.min != line.unit_price.max else ""
    return f"${text}/{UNIT_LABEL.get(line.unit, line.unit)}{suffix}"


def quantity(line: LineItem) -> str:
    if line.status != "priced":
        return "-"
    value = line.quantity.expected
    text = f"{value:,.0f}" if value == int(value) else f"{value:,.2f}"
    return f"{text} {UNIT_LABEL.get(line.unit, line.unit)}"


def cells(line: LineItem) -> tuple[str, str, str]:
    if line.status == "unpriced":
        return ("unpriced",) * 3
    if line.status == "usage":
        return ("usage?",) * 3
    monthly = line.monthly
    return usd(monthly.min), usd(monthly.expected), usd(monthly.max)


def totals_line(report: Report) -> str:
    total = report.total
    text = (f"cost (USD/month, {report.hours_per_month:g} h): min {usd(total.min)} · "
            f"expected {usd(total.expected)} · max {usd(total.max)}")
    notes = []
    if report.unpriced:
        notes.append(f"{len(report.unpriced)} unpriced item(s) not included")
    if report.usage_missing:
        notes.append(f"{len(report.usage_missing)} usage-based charge(s) without usage")
    if report.budget_usd is not None:
        state = "OVER BUDGET" if report.over_budget else "within budget"
        notes.append(f"budget {usd(report.budget_usd)}: {state}")
    return text + (f" ({'; '.join(notes)})" if notes else "")


def console_for(console: Console | None) -> Console:
    from rich.console import Console  # noqa: PLC0415 - rich only for tables

    if console is not None:
        return console
    console = Console()
    if not console.is_terminal:  # piped or captured: do not squeeze the table into 80 columns
        console = Console(width=max(console.width, 150))
    return console


def short_name(report: Report, name: str) -> str:
    return name.removeprefix(report.name_prefix) or name


def print_table(report: Report, console: Console | None = None,
                unit_costs: UnitCosts | None = None) -> None:
    from rich import box  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    console = console_for(console)
    table = Table(title=f"aiinfra cost · stack {report.stack} · {report.region} · USD per "
                        f"month ({report.hours_per_month:g} h)", box=box.SIMPLE_HEAD)
    table.add_column("resource", max_width=30, no_wrap=True, overflow="ellipsis")
    table.add_column("item", min_width=40)
    for column in ("quantity", "unit price", "min", "expected", "max"):
        table.add_column(column, justify="right", no_wrap=True)
    subtotals = report.component_totals()
    for component, lines in report.by_component().items():
        sub = subtotals[component]
        table.add_row(f"[bold]{component}[/bold]", "", "", "", f"[bold]{usd(sub.min)}[/bold]",
                      f"[bold]{usd(sub.expected)}[/bold]", f"[bold]{usd(sub.max)}[/bold]")
        for index, line in enumerate(lines):
            table.add_row("  " + short_name(report, line.name), line.description,
                          quantity(line), unit_price(line), *cells(line),
                          end_section=index == len(lines) - 1)
    total = report.total
    table.add_row("[bold]total[/bold]", "", "", "", f"[bold]{usd(total.min)}[/bold]",
                  f"[bold]{usd(total.expected)}[/bold]", f"[bold]{usd(total.max)}[/bold]")
    console.print(table)
    for warning in report.warnings():
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    for name, note in node_notes(report):
        console.print(f"[dim]{name}:[/dim] {note}", highlight=False)
    if report.budget_usd is not None:
        ratio = total.expected / report.budget_usd
        state = ("[red]OVER BUDGET[/red]" if report.over_budget else "[green]within budget[/green]")
        console.print(f"budget {usd(report.budget_usd)}/month: expected {usd(total.expected)} "
                      f"({ratio:.0%}) {state}", highlight=False)
    print_savings(report, console)
    if unit_costs is not None:
        print_unit_costs(unit_costs, console)


def node_notes(report: Report) -> list[tuple[str, str]]:
    """How each GPU NodePool's node count and price were derived (the lines' notes)."""
    return [(short_name(report, li.name), li.note) for li in report.lines
            if li.type == "kubernetes:karpenter.sh/v1:NodePool" and li.item == "instances"
            and li.note]


def savings_rows(report: Report) -> list[tuple[str, str, str, str, str]]:
    """Per GPU pool (expected): its cost, the same nodes all on-demand, and the saving."""
    rows = []
    for pool in report.pools:
        saving = pool.saving
        if saving is None:
            rows.append((pool.name, pool.capacity, "unpriced", "-", "-"))
            continue
        share = (f" ({saving.expected / pool.on_demand_monthly.expected:.0%})"
                 if pool.on_demand_monthly.expected else "")
        rows.append((pool.name, pool.capacity, usd(pool.monthly.expected),
                     usd(pool.on_demand_monthly.expected),
                     usd(saving.expected, signed=True) + share))
    return rows


def print_savings(report: Report, console: Console) -> None:
    from rich import box  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    rows = savings_rows(report)
    if not rows:
        return
    table = Table(title="GPU pools against all on-demand (expected, USD per month)",
                  box=box.SIMPLE_HEAD)
    for column in ("pool", "capacity", "cost", "all on-demand", "saving"):
        table.add_column(column, justify="left" if column in ("pool", "capacity") else "right")
    for row in rows:
        table.add_row(*row)
    console.print(table)


def print_unit_costs(unit_costs: UnitCosts, console: Console) -> None:
    from rich import box  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    table = Table(title=f"cost per 1M inferences ({unit_costs.source})", box=box.SIMPLE_HEAD)
    for column in ("pool", "capacity", "throughput/node", "$/node-hour", "$ per 1M"):
        table.add_column(column, justify="left" if column in ("pool", "capacity") else "right")
    for pool in unit_costs.pools:
        table.add_row(pool.name, pool.capacity, f"{pool.throughput:,.1f}/s",
                      usd_fine(pool.node_hourly) if pool.node_hourly is not None else "unpriced",
                      usd_fine(pool.per_million) if pool.per_million is not None else "unpriced")
    table.add_row("[bold]blended[/bold]", "expected mix", "", "", usd_fine(unit_costs.blended))
    console.print(table)
    if unit_costs.all_in is not None:
        console.print(f"all-in (whole stack, expected, GPU nodes fully busy): "
                      f"{usd_fine(unit_costs.all_in)} per 1M inferences", highlight=False)
    for note in unit_costs.notes:
        console.print(f"[yellow]note:[/yellow] {note}", highlight=False)


def round_floats(value):
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: round_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [round_floats(v) for v in value]
    return value


def as_json(report: Report, unit_costs: UnitCosts | None = None) -> str:
    data = report.as_dict()
    if unit_costs is not None:
        data["per_million_inferences"] = unit_costs.as_dict()
    return json.dumps(round_floats(data), indent=2)


def _md_cell(line: LineItem, value: float | None) -> str:
    if line.status == "unpriced":
        return "unpriced"
    if line.status == "usage":
        return "usage?"
    return usd(value)


def as_markdown(report: Report, unit_costs: UnitCosts | None = None) -> str:
    total = report.total
    out = [f"### aiinfra cost · `{report.stack}` · {report.region}", "",
           f"USD per month ({report.hours_per_month:g} h). Min, expected and max use the "
           "node groups' min, desired and max sizes.", "",
           "| Component | Resource | Item | Min | Expected | Max |",
           "|---|---|---|---:|---:|---:|"]
    for component, lines in report.by_component().items():
        for line in lines:
            monthly = line.monthly or Range.of(0)
            out.append(f"| {component} | `{line.name}` | {line.description} | "
                       f"{_md_cell(line, monthly.min)} | {_md_cell(line, monthly.expected)} | "
                       f"{_md_cell(line, monthly.max)} |")
    out.append(f"| **Total** | | | **{usd(total.min)}** | **{usd(total.expected)}** | "
               f"**{usd(total.max)}** |")
    out += _md_footer(report)
    notes = node_notes(report)
    if notes:
        out += ["", "<details><summary>How the GPU nodes were counted and priced</summary>", ""]
        out += [f"- `{name}`: {note}" for name, note in notes]
        out += ["", "</details>"]
    rows = savings_rows(report)
    if rows:
        out += ["", "| GPU pool | Capacity | Expected | All on-demand | Saving |",
                "|---|---|---:|---:|---:|"]
        out += [f"| {' | '.join(row)} |" for row in rows]
    if unit_costs is not None:
        out += ["", "| GPU pool | Capacity | Throughput/node | $ per 1M inferences |",
                "|---|---|---:|---:|"]
        for pool in unit_costs.pools:
            cost = usd_fine(pool.per_million) if pool.per_million is not None else "unpriced"
            out.append(f"| {pool.name} | {pool.capacity} | {pool.throughput:,.1f}/s | {cost} |")
        out.append(f"| **blended** | expected mix | | **{usd_fine(unit_costs.blended)}** |")
    return "\n".join(out) + "\n"


def _md_footer(report: Report) -> list[str]:
    out = []
    if report.unpriced:
        out += ["", f"**{len(report.unpriced)} unpriced** (not in the totals): "
                + ", ".join(f"`{li.name}` ({li.note})" for li in report.unpriced)]
    if report.usage_missing:
        out += ["", "Usage-based, no usage given: "
                + ", ".join(f"`{li.name}` {li.item}" for li in report.usage_missing)]
    out += [f"\n**Warning:** {notice}" for notice in report.notices]
    if report.budget_usd is not None:
        state = "**over budget**" if report.over_budget else "within budget"
        out += ["", f"Budget {usd(report.budget_usd)}/month: expected "
                f"{usd(report.total.expected)}, {state}."]
    return out
