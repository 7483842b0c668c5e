"""cost-stack-keep-monthly-cost-within-budget: the projected bill stays under the budget.

The projection is the cost engine's (``infra.cost.projected_monthly_cost(graph)``) and the
judgement is its threshold function (``infra.cost.assess``, the one ``aiinfra cost --diff``
applies to a pull request's change): the budget is a fail threshold on the increase over
nothing. Both are imported only when the rule runs, so the rest of the pack works without them.
"""

from __future__ import annotations

from collections.abc import Iterator

from policies.core import Context, Finding, NotApplicable, Rule, Stack


def _budget(context: Context) -> float | None:
    configured = context.settings.get("budgetMonthlyUsd")
    if configured:
        return float(configured)
    return getattr(context.config, "budget_monthly_usd", None)


def check(stack: Stack, context: Context) -> Iterator[Finding]:
    budget = _budget(context)
    if not budget:
        raise NotApplicable("the stack sets no budgetMonthlyUsd")
    try:
        from infra.cost import (  # noqa: PLC0415 - optional engine
            Threshold,
            assess,
            projected_monthly_cost,
        )
    except ModuleNotFoundError as exc:
        if exc.name not in ("infra.cost", "infra"):
            raise
        raise NotApplicable("the cost engine (infra.cost) is not installed") from None
    if stack.graph is None:
        raise NotApplicable("no rendered graph to price")
    projected = float(projected_monthly_cost(stack.graph))
    if assess(0.0, projected, fail=Threshold.dollars(budget)).level == "over":
        yield Finding(f"the projected monthly cost is ${projected:,.0f}, "
                      f"${projected - budget:,.0f} ({projected / budget - 1:.0%}) over the "
                      f"${budget:,.0f} budget")


RULE = Rule(
    name="cost-stack-keep-monthly-cost-within-budget",
    description="The stack's projected monthly cost stays within its budgetMonthlyUsd.",
    severity="high",
    rationale="An overrun found on the invoice is a month too late to prevent.",
    remediation="Shrink what drives the projection (aiinfra cost STACK lists it): smaller or "
                "fewer GPU nodes, spot or reserved instead of on-demand, or raise "
                "budgetMonthlyUsd with the budget owner's approval.",
    check_stack=check,
    config_schema={"budgetMonthlyUsd": {"type": "number", "exclusiveMinimum": 0,
                                        "description": "overrides aiinfra:budgetMonthlyUsd"}},
    tags=("cost",),
)
