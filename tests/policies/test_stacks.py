"""The real stacks pass their mandatory rules; the bad fixture fails with the listed ones; and
``aiinfra check`` / ``aiinfra preview`` say so (table, JSON, SARIF, exit codes)."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from typer.testing import CliRunner

from aiinfra.cli import app
from infra.render import Graph
from policies.offline import check_graph, stack_view
from policies.output import component_files, sarif
from policies.registry import all_rules
from tests.policies.conftest import BAD_STACK_DIR

BAD_RULES = {
    "aws-eks-cluster-disallow-unrestricted-public-endpoint",
    "aws-resource-require-cost-allocation-tags",
    "cost-stack-keep-monthly-cost-within-budget",
    "kubernetes-karpenter-sh-v1-nodepool-require-gpu-baseline-capacity",
    "kubernetes-workload-pin-images-by-digest",
    # The same unpinned image, refused by the cluster's aiinfra-image-digests policy.
    "kubernetes-object-require-cluster-admission",
}
BAD_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/aiinfra-prod-serving-image:0.1.0"


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_each_stack_passes_its_mandatory_rules(stack_graphs: dict[str, Graph],
                                               stack: str) -> None:
    report = check_graph(stack_graphs[stack])
    assert report.mandatory == []
    assert report.passed


def test_prod_applies_every_rule_and_passes_all_of_them(stack_graphs: dict[str, Graph]) -> None:
    report = check_graph(stack_graphs["prod"])
    assert {result.status for result in report.results} == {"passed"}
    assert report.violations == []


def test_dev_reports_at_the_levels_of_its_config(stack_graphs: dict[str, Graph]) -> None:
    report = check_graph(stack_graphs["dev"])
    levels = Counter(result.level for result in report.results)
    fixed = sum(1 for rule in all_rules() if rule.fixed_level)
    assert fixed == 2
    assert levels == {"advisory": len(all_rules()) - 5 - fixed, "mandatory": 5 + fixed}
    not_applicable = {r.rule.name for r in report.results if r.status == "not-applicable"}
    assert not_applicable == {rule.name for rule in all_rules() if rule.environments}


def test_the_bad_stack_fails_with_the_listed_violations(bad_graph: Graph) -> None:
    report = check_graph(bad_graph)
    assert not report.passed
    assert {v.rule for v in report.mandatory} == BAD_RULES
    by_rule = {rule: [v.finding for v in report.violations if v.rule == rule]
               for rule in BAD_RULES}
    assert by_rule["aws-eks-cluster-disallow-unrestricted-public-endpoint"] == [
        "EKS cluster aiinfra-prod exposes its API endpoint publicly to 0.0.0.0/1, 128.0.0.0/1"]
    assert by_rule["kubernetes-karpenter-sh-v1-nodepool-require-gpu-baseline-capacity"] == [
        "the non-spot GPU NodePool(s) gpu-l4-base (weight 10) fill only after spot NodePool "
        "gpu-l4-spot (weight 50), so spot takes the GPU pods first"]
    assert by_rule["kubernetes-workload-pin-images-by-digest"] == [
        f"Deployment aiinfra/aiinfra-serving: container 'server' image '{BAD_IMAGE}' is not "
        "pinned by digest"]
    assert by_rule["kubernetes-object-require-cluster-admission"] == [
        "Deployment aiinfra/aiinfra-serving: refused by ValidatingAdmissionPolicy "
        "aiinfra-image-digests: every image is pinned by digest (name:tag@sha256:...)"]
    [over_budget] = by_rule["cost-stack-keep-monthly-cost-within-budget"]
    assert over_budget.startswith("the projected monthly cost is $")
    assert over_budget.endswith("over the $500 budget")
    tags = by_rule["aws-resource-require-cost-allocation-tags"]
    assert tags
    assert all(finding.endswith("lacks cost-allocation tag(s) cost-center") for finding in tags)
    tagged = [s for s in stack_view(bad_graph).resources if "cost-center" in s.props.get(
        "tags", {})]
    assert len(tags) == len(tagged)


def test_references_link_resources_through_their_rendered_ids(
        stack_graphs: dict[str, Graph]) -> None:
    stack = stack_view(stack_graphs["prod"])
    group = next(s for s in stack.resources if s.name == "aiinfra-prod-system"
                 and s.type == "aws:eks/nodeGroup:NodeGroup")
    [template] = stack.referenced(group, "launchTemplate",
                                  "aws:ec2/launchTemplate:LaunchTemplate")
    assert template.name == "aiinfra-prod-system"


def test_sarif_is_a_2_1_0_log_with_a_located_result_per_violation(bad_graph: Graph) -> None:
    report = check_graph(bad_graph)
    log = sarif(report)
    assert log["version"] == "2.1.0"
    assert log["$schema"].endswith("sarif-2.1.0.json")
    [run] = log["runs"]
    descriptors = run["tool"]["driver"]["rules"]
    assert [d["id"] for d in descriptors] == [rule.name for rule in all_rules()]
    assert len(run["results"]) == len(report.violations)
    for result in run["results"]:
        assert descriptors[result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["level"] == "error"
        assert result["message"]["text"]
        [location] = result["locations"]
        uri = location["physicalLocation"]["artifactLocation"]["uri"]
        assert uri.startswith("infra/components/") or uri == "Pulumi.bad.yaml"
    endpoint = next(r for r in run["results"]
                    if r["ruleId"] == "aws-eks-cluster-disallow-unrestricted-public-endpoint")
    assert endpoint["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == (
        "infra/components/cluster.py")
    assert endpoint["locations"][0]["logicalLocations"][0]["fullyQualifiedName"] == (
        "aws:eks/cluster:Cluster::aiinfra-prod")


def test_every_component_is_found_in_its_source_file(stack_graphs: dict[str, Graph]) -> None:
    components = {r.type for r in stack_graphs["prod"].resources if r.type.startswith("aiinfra:")}
    assert components <= set(component_files())


runner = CliRunner()


def test_check_passes_prod_with_exit_0() -> None:
    result = runner.invoke(app, ["check", "prod"])
    assert result.exit_code == 0, result.output
    assert "policies PASS · stack prod (prod)" in result.output


def test_check_fails_the_bad_stack_with_exit_1_naming_each_rule() -> None:
    result = runner.invoke(app, ["check", "bad", "--project-dir", str(BAD_STACK_DIR)])
    assert result.exit_code == 1
    for rule in BAD_RULES:
        assert rule in result.output
    assert "policies FAIL · stack bad (prod)" in result.output


@pytest.mark.parametrize("fmt", ["json", "sarif"])
def test_check_writes_machine_readable_reports(fmt: str) -> None:
    result = runner.invoke(app, ["check", "bad", "--project-dir", str(BAD_STACK_DIR),
                                 "--format", fmt])
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    if fmt == "json":
        assert document["passed"] is False
        assert {v["rule"] for v in document["violations"]} == BAD_RULES
    else:
        assert {r["ruleId"] for r in document["runs"][0]["results"]} == BAD_RULES


def test_check_refuses_unknown_formats_and_stacks_with_exit_2() -> None:
    assert runner.invoke(app, ["check", "prod", "--format", "xml"]).exit_code == 2
    missing = runner.invoke(app, ["check", "qa"])
    assert missing.exit_code == 2
    assert "no stack file Pulumi.qa.yaml" in missing.output


def test_preview_ends_with_the_policy_verdict() -> None:
    result = runner.invoke(app, ["preview", "staging"])
    assert result.exit_code == 0, result.output
    assert "policies PASS · stack staging (staging)" in result.output
    assert "(details: aiinfra check staging)" in result.output
