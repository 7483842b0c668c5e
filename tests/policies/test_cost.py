"""cost-stack-keep-monthly-cost-within-budget over the cost engine's projection (infra.cost)."""

from __future__ import annotations

import sys

import pytest

from infra.cost import projected_monthly_cost
from infra.render import Graph
from policies.core import Context, NotApplicable
from policies.offline import stack_view
from policies.registry import rule_named

RULE = rule_named("cost-stack-keep-monthly-cost-within-budget")


def _context(graph: Graph, **changes: object) -> Context:
    config = graph.config.model_copy(update=changes)
    return Context(environment=config.environment, stack=graph.stack, config=config)


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_each_stack_is_within_its_budget(stack_graphs: dict[str, Graph], stack: str) -> None:
    graph = stack_graphs[stack]
    assert RULE.messages(stack_view(graph), _context(graph)) == []


def test_a_budget_below_the_projection_fails_with_the_exact_message(
        stack_graphs: dict[str, Graph]) -> None:
    graph = stack_graphs["prod"]
    projected = projected_monthly_cost(graph)
    budget = 1000.0
    assert projected > budget
    got = RULE.messages(stack_view(graph), _context(graph, budget_monthly_usd=budget))
    assert got == [RULE.message(
        f"the projected monthly cost is ${projected:,.0f}, ${projected - budget:,.0f} "
        f"({projected / budget - 1:.0%}) over the $1,000 budget")]


def test_policy_config_can_set_the_budget(stack_graphs: dict[str, Graph]) -> None:
    graph = stack_graphs["dev"]
    context = _context(graph).with_settings({"budgetMonthlyUsd": 1})
    [message] = RULE.messages(stack_view(graph), context)
    assert "over the $1 budget" in message


def test_a_stack_without_a_budget_is_not_checked(stack_graphs: dict[str, Graph]) -> None:
    graph = stack_graphs["dev"]
    with pytest.raises(NotApplicable, match="sets no budgetMonthlyUsd"):
        RULE.messages(stack_view(graph), _context(graph, budget_monthly_usd=None))


def test_without_the_cost_engine_the_rule_does_not_apply(
        stack_graphs: dict[str, Graph], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "infra.cost", None)
    graph = stack_graphs["dev"]
    with pytest.raises(NotApplicable, match=r"the cost engine \(infra.cost\) is not installed"):
        RULE.messages(stack_view(graph), _context(graph))


def test_the_rule_judges_with_the_cost_engines_threshold_function(
        stack_graphs: dict[str, Graph], monkeypatch: pytest.MonkeyPatch) -> None:
    import infra.cost  # noqa: PLC0415

    calls = []
    real = infra.cost.assess

    def recording(before, after, **thresholds):
        calls.append((before, after, thresholds))
        return real(before, after, **thresholds)

    monkeypatch.setattr(infra.cost, "assess", recording)
    graph = stack_graphs["staging"]
    RULE.messages(stack_view(graph), _context(graph))
    assert calls == [(0.0, pytest.approx(projected_monthly_cost(graph)),
                      {"fail": infra.cost.Threshold.dollars(9000)})]
