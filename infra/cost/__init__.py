"""Cost previews: price the offline resource graph from a dated, sourced catalogue.

``projected_monthly_cost(graph)`` is the expected monthly USD of a rendered stack;
``check_budget(graph)`` compares it with the stack's ``budgetMonthlyUsd``. Both are pure
functions of the graph (plus the packaged catalogue and an optional usage file) and are what
``aiinfra cost`` and the policy pack use. ``assess(before, after, warn=, fail=)`` judges a
change against thresholds (``infra.cost.thresholds``): ``aiinfra cost --diff``'s verdict, and
the budget's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from infra.cost.catalogue import Catalogue, CatalogueError, load_catalogue
from infra.cost.estimator import estimate
from infra.cost.model import LineItem, PoolCost, Range, Report
from infra.cost.thresholds import Threshold, Verdict, assess
from infra.cost.usage import Usage, load_usage

if TYPE_CHECKING:
    from infra.render import Graph


def projected_monthly_cost(graph: Graph, usage: Usage | None = None,
                           catalogue: Catalogue | None = None) -> float:
    """Expected monthly USD (desired node counts, 730 h): priced items only.

    Unpriced items are left out (``estimate(graph).unpriced`` lists them) and usage-based
    charges count only when ``usage`` gives their quantities.
    """
    return estimate(graph, catalogue=catalogue, usage=usage).total.expected


@dataclass(frozen=True)
class BudgetResult:
    budget_usd: float | None
    expected_usd: float
    unpriced: int

    @property
    def over(self) -> bool:
        """A budget is a fail threshold on the increase over nothing (``assess``)."""
        return self.budget_usd is not None and assess(
            0.0, self.expected_usd, fail=Threshold.dollars(self.budget_usd)).level == "over"

    @property
    def message(self) -> str:
        if self.budget_usd is None:
            return (f"no budgetMonthlyUsd set; expected ${self.expected_usd:,.2f}/month")
        verdict = "exceeds" if self.over else "is within"
        text = (f"expected ${self.expected_usd:,.2f}/month {verdict} the budget of "
                f"${self.budget_usd:,.2f}/month")
        if self.unpriced:
            text += f" ({self.unpriced} unpriced item(s) not counted)"
        return text


def check_budget(graph: Graph, usage: Usage | None = None,
                 catalogue: Catalogue | None = None) -> BudgetResult:
    """The stack's expected monthly cost against ``budget_monthly_usd`` from its config."""
    report = estimate(graph, catalogue=catalogue, usage=usage)
    return BudgetResult(graph.config.budget_monthly_usd, report.total.expected,
                        len(report.unpriced))


__all__ = ["BudgetResult", "Catalogue", "CatalogueError", "LineItem", "PoolCost", "Range",
           "Report", "Threshold", "Usage", "Verdict", "assess", "check_budget", "estimate",
           "load_catalogue", "load_usage", "projected_monthly_cost"]
