"""Warn and fail thresholds on a cost change: parsing, verdicts by hand, exit codes, the PR
comment, stack config, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aiinfra.cli import app
from infra.config import ConfigError, parse_stack_config
from infra.cost import estimate
from infra.cost.diff import diff_markdown, diff_reports
from infra.cost.thresholds import Threshold, ThresholdError, assess
from infra.cost.usage import load_usage
from infra.render import stack_values

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(("text", "amount", "percent"), [
    ("+$500", 500.0, False), ("$500", 500.0, False), ("500", 500.0, False),
    ("+$1,250.50", 1250.5, False), ("+10%", 10.0, True), ("2.5%", 2.5, True),
])
def test_parse(text, amount, percent) -> None:
    assert Threshold.parse(text) == Threshold(amount, percent)


@pytest.mark.parametrize("text", ["-5%", "+$5%", "ten", "", "+$", "5 dollars"])
def test_parse_refuses(text) -> None:
    with pytest.raises(ThresholdError, match=r"give dollars a month \(\+\$500\) or a percent"):
        Threshold.parse(text)


def test_verdicts_by_hand() -> None:
    warn, fail = Threshold.parse("+$500"), Threshold.parse("+10%")
    # 4,000 → 4,300: +300, under both (+500, and 10% of 4,000 = +400)
    ok = assess(4000, 4300, warn=warn, fail=fail)
    assert (ok.level, ok.exit_code) == ("ok", 0)
    assert ok.reason() == "within warn above +$500.00 and fail above +10% (+$400.00)"
    # fail first: 4,000 → 4,450 is +450 > +400, though under the warn's +500
    over = assess(4000, 4450, warn=warn, fail=fail)
    assert (over.level, over.exit_code) == ("over", 1)
    assert over.headline() == ("❌ over: +$450.00/month (+11.2%), above the fail threshold "
                               "+10% (+$400.00)")
    # 10,000 → 10,600: +600 > +500 warn, < +1,000 fail
    warning = assess(10000, 10600, warn=warn, fail=fail)
    assert (warning.level, warning.exit_code) == ("warning", 3)
    assert warning.headline() == ("⚠️ warning: +$600.00/month (+6.0%), above the warn "
                                  "threshold +$500.00")
    # exactly at the threshold is not above it; a saving is never over
    assert assess(4000, 4400, fail=fail).level == "ok"
    assert assess(4000, 1000, warn=warn, fail=fail).change() == "-$3,000.00/month (-75.0%)"
    # percent of a zero baseline: any increase is above it
    assert assess(0, 0.01, fail=fail).level == "over"
    assert assess(100, 200).reason() == "no thresholds set"


def test_a_budget_is_a_fail_threshold_over_nothing() -> None:
    budget = Threshold.dollars(45000)
    assert assess(0.0, 45000.0, fail=budget).level == "ok"
    assert assess(0.0, 45000.01, fail=budget).level == "over"


def test_stack_config_thresholds(graphs) -> None:
    prod = graphs["prod"].config.cost_thresholds
    assert (prod.warn_above, prod.fail_above) == ("+$500", "+10%")
    values = {**stack_values("dev"), "costThresholds": {"failAbove": "ten percent"}}
    with pytest.raises(ConfigError, match="threshold 'ten percent'"):
        parse_stack_config(values)


def test_markdown_opens_with_the_verdict(fixture_graph, catalogue) -> None:
    from .test_diff import changed_graph  # noqa: PLC0415

    base = estimate(fixture_graph, catalogue=catalogue)
    new = estimate(changed_graph(), catalogue=catalogue)
    verdict = assess(base.total.expected, new.total.expected,
                     warn=Threshold.parse("+$100"), fail=Threshold.parse("+20%"))
    text = diff_markdown(diff_reports(base, new, base_label="main", new_label="this change",
                                      verdict=verdict))
    first, _, second, *_ = text.splitlines()
    # 3,319.04 → 3,705.64: +386.60 (+11.6%), above +$100, under 20% (+663.81)
    assert first == ("**aiinfra cost ⚠️ warning: +$386.60/month (+11.6%), above the warn "
                     "threshold +$100.00** · `this change` vs `main`")
    assert second.startswith("Monthly cost will change by **+$386.60** (+11.6%)")
    assert "exit code 3" in text
    assert "| unchanged |" not in text  # only changed lines


def totals(graphs, stack: str) -> float:
    return estimate(graphs[stack], usage=load_usage(stack)).total.expected


def test_fail_above_percent_exits_1_with_a_pr_comment(runner, graphs) -> None:
    result = runner.invoke(app, ["cost", "prod", "--diff", "dev", "--fail-above", "+10%",
                                 "--format", "markdown"])
    assert result.exit_code == 1, result.output
    before, after = totals(graphs, "dev"), totals(graphs, "prod")
    verdict = assess(before, after, warn=Threshold.parse("+$500"),
                     fail=Threshold.parse("+10%"))
    assert result.stdout.startswith(f"**aiinfra cost {verdict.headline()}** · `stack prod` "
                                    "vs `stack dev`\n")
    assert "error: cost change" in result.stderr


def test_warn_only_exits_3(runner) -> None:
    result = runner.invoke(app, ["cost", "prod", "--diff", "staging", "--warn-above", "+1%",
                                 "--fail-above", "+10000%", "--format", "json"])
    assert result.exit_code == 3, result.output
    verdict = json.loads(result.stdout)["verdict"]
    assert verdict["verdict"] == "warning"
    assert verdict["exit_code"] == 3
    assert (verdict["warn_above"], verdict["fail_above"]) == ("+1%", "+10000%")


def test_the_stack_config_thresholds_apply_without_flags(runner) -> None:
    same = runner.invoke(app, ["cost", "prod", "--diff", "prod"])
    assert same.exit_code == 0, same.output
    assert "verdict ✅ ok: +$0.00/month (+0.0%), within warn above +$500.00 and fail " \
        "above +10%" in same.stdout
    bigger = runner.invoke(app, ["cost", "prod", "--diff", "staging"])
    assert bigger.exit_code == 1  # prod's failAbove +10% against staging


@pytest.mark.parametrize(("args", "message"), [
    (["cost", "prod", "--fail-above", "+10%"], "judge a change: give --diff REF"),
    (["cost", "prod", "--diff", "dev", "--warn-above", "lots"], "threshold 'lots'"),
])
def test_threshold_input_errors_exit_2(runner, args, message) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output
