"""Deltas between two reports, markdown for pull requests, and git-ref baselines."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from infra.cost import estimate
from infra.cost.cli import run_cost
from infra.cost.diff import DiffError, baseline_graph, diff_markdown, diff_reports
from infra.render import Graph, Resource, render

from .conftest import fixture_resources, node_group, stack_config

ROOT = Path(__file__).resolve().parents[3]


def changed_graph() -> Graph:
    resources = [r for r in fixture_resources() if (r.type, r.name) != (
        "aws:eks/nodeGroup:NodeGroup", "aiinfra-dev-gpu-spot-spot")]
    resources.append(node_group("aiinfra-dev-gpu-spot-spot", ["g6.xlarge", "g6.2xlarge",
                                                             "g5.xlarge"], "spot", (0, 3, 4),
                                "spot"))
    resources.append(Resource("aws:ec2/natGateway:NatGateway", "aiinfra-dev-nat-b",
                              "aiinfra-dev-network", {}))
    resources = [r for r in resources if r.name != "aiinfra-dev-secrets"]
    return Graph("dev", stack_config(), resources)


def test_deltas_by_hand(fixture_graph, catalogue) -> None:
    diff = diff_reports(estimate(fixture_graph, catalogue=catalogue),
                        estimate(changed_graph(), catalogue=catalogue),
                        base_label="before", new_label="after")
    changes = {(line.name, line.item): (line.change, round(line.delta.expected, 2))
               for line in diff.changed}
    assert changes == {
        # one more spot node: the mean 0.475 (fallback included) × 730 h, and its volume
        ("aiinfra-dev-gpu-spot-spot", "instances"): ("changed", 346.75),
        ("aiinfra-dev-gpu-spot-spot", "storage-gp3"): ("changed", 8.00),
        ("aiinfra-dev-nat-b", "hours"): ("added", 32.85),
        ("aiinfra-dev-nat-b", "data"): ("added", 0.00),  # usage-based, no usage given
        ("aiinfra-dev-secrets", "key"): ("removed", -1.00),
    }
    assert round(diff.total_delta.expected, 2) == 346.75 + 8 + 32.85 - 1
    assert round(diff.total_delta.min, 2) == 32.85 - 1  # min has no spot nodes either way
    assert round(diff.total_delta.max, 2) == 32.85 - 1  # max is 4 nodes either way


def test_markdown_comment(fixture_graph, catalogue) -> None:
    diff = diff_reports(estimate(fixture_graph, catalogue=catalogue),
                        estimate(changed_graph(), catalogue=catalogue),
                        base_label="main", new_label="this change")
    text = diff_markdown(diff)
    assert text.startswith("**aiinfra cost ✅ ok: +$386.60/month (+11.6%), no thresholds "
                           "set** · `this change` vs `main`\n")
    assert "Monthly cost will change by **+$386.60** (+11.6%): $3,319.04 → $3,705.64" in text
    assert "| Component | Resource | Item | Change | Before | After | Δ/month |" in text
    assert "| nodes | `aiinfra-dev-gpu-spot-spot` |" in text
    assert "| $693.50 | $1,040.25 | +$346.75 |" in text  # 2 → 3 nodes × 0.475 × 730 h
    assert "| **expected** | $3,319.04 | $3,705.64 | +$386.60 |" in text
    assert "Unpriced items are in neither figure: `aiinfra-dev-shared`." in text
    assert "**over budget**" in text  # budget 2,000 in the fixture config


def test_unpriced_side_has_no_delta(fixture_graph, catalogue) -> None:
    prices = dict(catalogue.prices)
    del prices["elasticache/redis/cache.r7g.large"]
    before = estimate(fixture_graph, catalogue=catalogue.model_copy(update={"prices": prices}))
    diff = diff_reports(before, estimate(fixture_graph, catalogue=catalogue),
                        base_label="a", new_label="b")
    (line,) = diff.changed
    assert line.change == "unpriced → priced"
    assert not line.comparable
    assert "| unpriced | $319.74 | n/a |" in diff_markdown(diff)


def test_other_stack_lines_match_by_name_without_prefix(graphs) -> None:
    diff = diff_reports(estimate(graphs["staging"]), estimate(graphs["prod"]),
                        base_label="staging", new_label="prod")
    by_key = {(line.type.split(":")[-1], line.item): line for line in diff.lines
              if line.name in ("aiinfra-prod", "aiinfra-prod-redis")}
    assert by_key[("Cluster", "hours")].change == "unchanged"  # one EKS cluster each
    redis = by_key[("ReplicationGroup", "nodes")]
    assert redis.base.name == "aiinfra-staging-redis"


def _git(folder: Path, *args: str, stdin: str | None = None) -> str:
    return subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True,
                          text=True, input=stdin).stdout.strip()


@pytest.fixture
def project_with_ref(tmp_path) -> tuple[Path, str]:
    """A project folder whose Pulumi.dev.yaml differs from a git tree-ish (no commit)."""
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    shutil.copy(ROOT / "Pulumi.dev.yaml", tmp_path / "Pulumi.dev.yaml")
    _git(tmp_path, "init", "-q")
    entries = "".join(f"100644 blob {_git(tmp_path, 'hash-object', '-w', name)}\t{name}\n"
                      for name in ("Pulumi.yaml", "Pulumi.dev.yaml"))
    tree = _git(tmp_path, "mktree", stdin=entries)
    stack = yaml.safe_load((tmp_path / "Pulumi.dev.yaml").read_text())
    stack["config"]["aiinfra:systemPool"]["desiredSize"] = 3  # one more m7i.large
    (tmp_path / "Pulumi.dev.yaml").write_text(yaml.safe_dump(stack))
    return tmp_path, tree


def test_git_ref_baseline(project_with_ref, capsys) -> None:
    folder, tree = project_with_ref
    graph, label = baseline_graph(tree, "dev", folder, render)
    assert label == f"dev@{tree}"
    assert graph.config.system_pool.desired_size == 2
    assert run_cost("dev", fmt="json", diff=tree, project_dir=folder) == 0
    data = json.loads(capsys.readouterr().out)
    # m7i.large 0.1008 × 730 h + its 50 GB gp3 root volume at 0.08
    assert data["total_delta"]["expected"] == pytest.approx(0.1008 * 730 + 50 * 0.08)
    assert [line["name"] for line in data["lines"]] == ["aiinfra-dev-system"] * 2


def test_unknown_baseline(project_with_ref) -> None:
    folder, _ = project_with_ref
    with pytest.raises(DiffError, match="not a stack here"):
        baseline_graph("no-such-ref", "dev", folder, render)
