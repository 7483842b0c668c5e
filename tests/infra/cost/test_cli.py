"""``aiinfra cost``, ``aiinfra prices`` and preview's cost line through the real CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from aiinfra.cli import app
from infra.cost import estimate
from infra.cost.usage import load_usage

ROOT = Path(__file__).resolve().parents[3]


def test_table(runner) -> None:
    result = runner.invoke(app, ["cost", "prod"])
    assert result.exit_code == 0, result.output
    assert "aiinfra cost · stack prod · us-east-1" in result.output
    assert "EKS control plane" in result.output
    assert "unpriced" not in result.output  # every resource of prod has a price
    assert "within budget" in result.output


def test_json_totals_match_the_estimator(runner, graphs) -> None:
    result = runner.invoke(app, ["cost", "prod", "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    report = estimate(graphs["prod"], usage=load_usage("prod"))
    assert data["total"]["expected"] == pytest.approx(report.total.expected, abs=1e-5)
    assert data["usage_file"].endswith("usage-prod.yaml")
    assert data["budget_monthly_usd"] == 45000
    assert data["unpriced"] == []
    pools = {p["name"]: p for p in data["pools"]}
    assert pools["l4-spot"]["saving_vs_on_demand"]["expected"] > 0


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_strict_passes_for_every_stack(runner, stack: str) -> None:
    result = runner.invoke(app, ["cost", stack, "--strict"])
    assert result.exit_code == 0, result.output


def test_strict_fails_on_unpriced(tmp_path, runner) -> None:
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    stack = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    stack["config"]["aiinfra:gpuPools"].append({
        "name": "h100", "capacity": "reserved", "reservedTerm": "1yr",
        "instanceTypes": ["p5.48xlarge"], "maxNodes": 1})
    stack["config"]["aiinfra:budgetMonthlyUsd"] = 100000
    (tmp_path / "Pulumi.dev.yaml").write_text(yaml.safe_dump(stack))
    result = runner.invoke(app, ["cost", "dev", "--strict", "--project-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "1 unpriced item(s) (--strict): aiinfra-dev-gpu-h100" in result.output
    assert "not offered: ec2/reserved-1yr/p5.48xlarge" in result.output


def test_markdown_diff_against_another_stack(runner) -> None:
    result = runner.invoke(app, ["cost", "prod", "--diff", "staging", "--format", "markdown"])
    assert result.exit_code == 1, result.output  # prod's costThresholds: fail above +10%
    assert result.stdout.startswith("**aiinfra cost ❌ over: +$")
    assert "above the fail threshold +10%" in result.stdout.splitlines()[0]
    assert result.stdout.splitlines()[0].endswith("· `stack prod` vs `stack staging`")
    assert "| Total | Before | After | Δ/month |" in result.output


def test_cost_per_million_from_a_bench_result(runner) -> None:
    bench = ROOT / "docs" / "bench" / "mlp-json-c32.json"
    result = runner.invoke(app, ["cost", "staging", "--bench", str(bench)])
    assert result.exit_code == 0, result.output
    assert "cost per 1M inferences" in result.output
    assert "blended" in result.output
    stated = runner.invoke(app, ["cost", "staging", "--format", "json",
                                 "--throughput-per-node", "l4-spot=100",
                                 "--throughput-per-node", "l4-base=200"])
    pools = {p["pool"]: p for p in json.loads(stated.stdout)["per_million_inferences"]["pools"]}
    assert pools["l4-base"]["usd_per_million"] == pytest.approx(0.8048 / (200 * 3600) * 1e6)


def test_over_budget_exits_non_zero(tmp_path, runner) -> None:
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    stack = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    stack["config"]["aiinfra:budgetMonthlyUsd"] = 100
    (tmp_path / "Pulumi.dev.yaml").write_text(yaml.safe_dump(stack))
    result = runner.invoke(app, ["cost", "dev", "--project-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "OVER BUDGET" in result.output
    assert "exceeds the budget of $100.00/month" in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["cost", "prod", "--format", "yaml"], "--format must be one of"),
    (["cost", "nope"], "no stack file Pulumi.nope.yaml"),
    (["cost", "prod", "--usage", "/nonexistent.yaml"], "no usage file"),
    (["cost", "prod", "--diff", "staging", "--throughput-per-node", "5"], "--diff compares"),
])
def test_bad_input_exits_2(runner, args, message) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output


def test_preview_prints_cost_totals(runner) -> None:
    result = runner.invoke(app, ["preview", "dev"])
    assert result.exit_code == 0, result.output
    assert "cost (USD/month, 730 h): min $" in result.output
    assert "details: aiinfra cost dev" in result.output
    as_json = runner.invoke(app, ["preview", "dev", "--format", "json"])
    assert "cost (USD/month" not in as_json.output  # JSON stays JSON
    json.loads(as_json.stdout)


def test_prices_refresh_help(runner) -> None:
    result = runner.invoke(app, ["prices", "refresh", "--help"])
    assert result.exit_code == 0
    assert "Price List API" in result.output


def test_preview_without_a_catalogue_for_the_region(graphs, capsys) -> None:
    from infra.cost.cli import print_preview_totals
    from infra.render import Graph

    config = graphs["dev"].config.model_copy(update={"region": "xx-nowhere-1"})
    print_preview_totals(Graph("dev", config, graphs["dev"].resources))
    assert "cost: not available (no price catalogue" in capsys.readouterr().out


def test_preview_names_what_the_operator_must_set_before_a_real_up(runner) -> None:
    prod = runner.invoke(app, ["preview", "prod"])
    assert prod.exit_code == 0, prod.output
    assert ("set for the account before `pulumi up` (stood in for offline): "
            "aiinfra:alertReceiverUrl, aiinfra:publicAccessCidrs") in prod.output
    dev = runner.invoke(app, ["preview", "dev"])
    # dev names its networks; only its receiver's URL is the operator's
    assert "stood in for offline): aiinfra:alertReceiverUrl\n" in dev.output
