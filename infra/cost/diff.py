"""What a change adds: per-resource and total deltas between two cost reports.

The baseline is another stack (``aiinfra cost prod --diff staging``) or a git ref of the same
stack's config (``aiinfra cost prod --diff main``: ``Pulumi.prod.yaml`` as of ``main``,
rendered with today's program). Lines are matched by type, name without the stack prefix and
item, so ``aiinfra-staging-redis`` and ``aiinfra-prod-redis`` are the same line.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from infra.cost.model import ZERO, LineItem, Range, Report
from infra.cost.report import round_floats, short_name, usd
from infra.cost.thresholds import Verdict, assess

if TYPE_CHECKING:
    from rich.console import Console

    from infra.render import Graph


class DiffError(ValueError):
    """The baseline is neither a stack nor a git ref holding the stack's config."""


@dataclass
class DiffLine:
    component: str
    type: str
    name: str
    item: str
    description: str
    base: LineItem | None
    new: LineItem | None

    @staticmethod
    def _value(line: LineItem | None) -> Range:
        return line.monthly if line is not None and line.monthly is not None else ZERO

    @property
    def before(self) -> Range:
        return self._value(self.base)

    @property
    def after(self) -> Range:
        return self._value(self.new)

    @property
    def delta(self) -> Range:
        return self.after - self.before

    @property
    def comparable(self) -> bool:
        """False when either side is unpriced: the delta would be meaningless."""
        return not any(line is not None and line.status == "unpriced"
                       for line in (self.base, self.new))

    @property
    def change(self) -> str:
        if self.base is None:
            return "added"
        if self.new is None:
            return "removed"
        if self.base.status != self.new.status:
            return f"{self.base.status} → {self.new.status}"
        if self.delta != ZERO or self.base.description != self.new.description:
            return "changed"
        return "unchanged"

    def as_dict(self) -> dict:
        return {"component": self.component, "type": self.type, "name": self.name,
                "item": self.item, "description": self.description, "change": self.change,
                "before": self.before.as_dict(), "after": self.after.as_dict(),
                "delta": self.delta.as_dict(),
                "before_status": self.base.status if self.base else None,
                "after_status": self.new.status if self.new else None}


@dataclass
class CostDiff:
    base_label: str
    new_label: str
    base: Report
    new: Report
    lines: list[DiffLine]
    verdict: Verdict

    @property
    def changed(self) -> list[DiffLine]:
        return [line for line in self.lines if line.change != "unchanged"]

    @property
    def total_delta(self) -> Range:
        return self.new.total - self.base.total

    def as_dict(self) -> dict:
        return {"base": self.base_label, "new": self.new_label,
                "verdict": self.verdict.as_dict(),
                "total_before": self.base.total.as_dict(),
                "total_after": self.new.total.as_dict(),
                "total_delta": self.total_delta.as_dict(),
                "unpriced_after": [li.name for li in self.new.unpriced],
                "lines": [line.as_dict() for line in self.changed]}


def _key(report: Report, line: LineItem) -> tuple[str, str, str]:
    """Match across stacks: ``aiinfra-prod-redis`` ~ ``aiinfra-staging-redis``."""
    name = line.name
    if name == report.name_prefix.rstrip("-"):
        name = "(stack)"  # e.g. the EKS cluster is named after the stack
    return (line.type, name.removeprefix(report.name_prefix), line.item)


def diff_reports(base: Report, new: Report, *, base_label: str, new_label: str,
                 verdict: Verdict | None = None) -> CostDiff:
    """Match the lines of two reports; ``verdict`` judges the change (none: no thresholds)."""
    base_lines = {_key(base, li): li for li in base.lines}
    new_lines = {_key(new, li): li for li in new.lines}
    keys = list(new_lines) + [k for k in base_lines if k not in new_lines]
    order: dict[str, int] = {}
    for line in new.lines + base.lines:
        order.setdefault(line.component, len(order))
    keys.sort(key=lambda k: (order[(new_lines.get(k) or base_lines[k]).component], k[1], k[2]))
    lines = []
    for key in keys:
        old, now = base_lines.get(key), new_lines.get(key)
        shown = now or old
        lines.append(DiffLine(shown.component, shown.type, shown.name, shown.item,
                              shown.description if now is None or old is None or
                              old.description == now.description
                              else f"{old.description} → {now.description}", old, now))
    return CostDiff(base_label, new_label, base, new, lines,
                    verdict or assess(base.total.expected, new.total.expected))


def baseline_graph(other: str, stack: str, root: Path | None,
                   render: Callable[[str, Path | None], Graph]) -> tuple[Graph, str]:
    """Render ``other`` as a stack, or as ``git show OTHER:Pulumi.<stack>.yaml``."""
    from infra.render import project_dir  # noqa: PLC0415

    root = project_dir(root)
    if (root / f"Pulumi.{other}.yaml").is_file():
        return render(other, root), f"stack {other}"
    stack_file = _git_show(root, other, f"Pulumi.{stack}.yaml")
    if stack_file is None:
        stacks = sorted(p.name.split(".")[1] for p in root.glob("Pulumi.*.yaml"))
        raise DiffError(f"--diff {other}: not a stack here ({', '.join(stacks)}) and not a git "
                        f"ref holding Pulumi.{stack}.yaml")
    project_file = _git_show(root, other, "Pulumi.yaml")
    with tempfile.TemporaryDirectory(prefix="aiinfra-cost-") as tmp:
        folder = Path(tmp)
        (folder / f"Pulumi.{stack}.yaml").write_text(stack_file)
        if project_file is not None:
            (folder / "Pulumi.yaml").write_text(project_file)
        else:
            shutil.copy(root / "Pulumi.yaml", folder / "Pulumi.yaml")
        return render(stack, folder), f"{stack}@{other}"


def _git_show(root: Path, ref: str, name: str) -> str | None:
    if ref.startswith("-"):
        return None
    try:
        result = subprocess.run(["git", "show", f"{ref}:./{name}"], cwd=root, check=False,
                                capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout if result.returncode == 0 else None


def print_diff(diff: CostDiff, console: Console | None = None) -> None:
    from rich import box  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    from infra.cost.report import console_for  # noqa: PLC0415

    console = console_for(console)
    table = Table(title=f"aiinfra cost diff · {diff.base_label} → {diff.new_label} · "
                        "USD per month (expected)", box=box.SIMPLE_HEAD)
    for column in ("component", "resource", "item", "change", "before", "after", "delta"):
        table.add_column(column, justify="right" if column in ("before", "after", "delta")
                         else "left")
    for line in diff.changed:
        table.add_row(line.component, short_name(diff.new, line.name), line.description,
                      line.change,
                      _cell(line.base, line.before.expected), _cell(line.new, line.after.expected),
                      _delta(line))
    if not diff.changed:
        table.add_row("", "", "no cost changes", "", "", "", "")
    console.print(table)
    before, after, delta = diff.base.total, diff.new.total, diff.total_delta
    for label, attr in (("min", "min"), ("expected", "expected"), ("max", "max")):
        console.print(f"total {label:8}: {usd(getattr(before, attr))} → "
                      f"{usd(getattr(after, attr))} ({usd(getattr(delta, attr), signed=True)})",
                      highlight=False)
    for warning in diff.new.warnings():
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    console.print(f"verdict {diff.verdict.headline()}", highlight=False)


def _cell(line: LineItem | None, value: float) -> str:
    if line is None:
        return "-"
    if line.status == "unpriced":
        return "unpriced"
    if line.status == "usage":
        return "usage?"
    return usd(value)


def _delta(line: DiffLine) -> str:
    return usd(line.delta.expected, signed=True) if line.comparable else "n/a"


def _percent(delta: float, before: float) -> str:
    if not before:
        return ""
    return f" ({delta / before:+.1%})"


def diff_markdown(diff: CostDiff) -> str:
    """A pull-request comment, as is: a one-line verdict, the total change, then the lines
    that changed and the three totals."""
    before, after, delta = diff.base.total, diff.new.total, diff.total_delta
    sign = "+" if delta.expected >= 0 else "-"
    out = [f"**aiinfra cost {diff.verdict.headline()}** · `{diff.new_label}` vs "
           f"`{diff.base_label}`", "",
           f"Monthly cost will change by **{sign}{usd(abs(delta.expected))}**"
           f"{_percent(delta.expected, before.expected)}: {usd(before.expected)} → "
           f"{usd(after.expected)} expected (USD per month, {diff.new.hours_per_month:g} h).",
           "",
           "| Component | Resource | Item | Change | Before | After | Δ/month |",
           "|---|---|---|---|---:|---:|---:|"]
    for line in diff.changed:
        out.append(f"| {line.component} | `{line.name}` | {line.description} | {line.change} | "
                   f"{_cell(line.base, line.before.expected)} | "
                   f"{_cell(line.new, line.after.expected)} | {_delta(line)} |")
    if not diff.changed:
        out.append("| | | no cost changes | | | | |")
    out += ["", "| Total | Before | After | Δ/month |", "|---|---:|---:|---:|"]
    for label, attr in (("min", "min"), ("**expected**", "expected"), ("max", "max")):
        out.append(f"| {label} | {usd(getattr(before, attr))} | {usd(getattr(after, attr))} | "
                   f"{usd(getattr(delta, attr), signed=True)} |")
    if diff.new.unpriced or diff.base.unpriced:
        out += ["", "Unpriced items are in neither figure"
                + (": " + ", ".join(f"`{li.name}`" for li in diff.new.unpriced)
                   if diff.new.unpriced else "") + "."]
    if diff.new.budget_usd is not None:
        state = "**over budget**" if diff.new.over_budget else "within budget"
        out += ["", f"Budget {usd(diff.new.budget_usd)}/month: {state}."]
    out += ["", "<sub>Generated offline by `aiinfra cost --diff` from the repository's price "
            f"catalogue ({diff.new.region}, prices as of {diff.new.catalogue_date} or earlier); "
            f"exit code {diff.verdict.exit_code}.</sub>", "", "<!-- aiinfra-cost-comment -->"]
    return "\n".join(out) + "\n"


def diff_json(diff: CostDiff) -> str:
    return json.dumps(round_floats(diff.as_dict()), indent=2)
