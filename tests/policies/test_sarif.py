"""``aiinfra check --format sarif`` against the SARIF 2.1.0 schema (vendored), and what GitHub
code scanning reads from it: rule metadata with help URIs, located results, suppressions."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import jsonschema
import pytest

from infra.render import Graph
from policies.offline import check_graph
from policies.output import help_uri, rule_file, sarif
from policies.registry import all_rules, rule_named
from policies.waivers import Waivers, parse_waivers
from tests.policies.test_waivers import waiver_yaml

SCHEMA = json.loads((Path(__file__).parent / "schemas" / "sarif-schema-2.1.0.json").read_text())


def _valid(log: dict) -> None:
    jsonschema.Draft4Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(log)


@pytest.mark.parametrize("today", [date(2026, 12, 1), date(2027, 1, 1)])
def test_waived_and_expired_logs_are_valid_sarif(bad_graph: Graph, today: date) -> None:
    log = sarif(check_graph(bad_graph, waivers=parse_waivers(waiver_yaml()), today=today))
    _valid(log)
    results = log["runs"][0]["results"]
    suppressed = [r for r in results if "suppressions" in r]
    assert len(suppressed) == (1 if today.year == 2026 else 0)
    if suppressed:  # the schema is live: a kind SARIF does not know is refused
        suppressed[0]["suppressions"][0]["kind"] = "waiver"
        with pytest.raises(jsonschema.ValidationError, match="'waiver' is not one of"):
            _valid(log)


def test_a_passing_log_is_valid_and_declares_every_rule(stack_graphs: dict[str, Graph]) -> None:
    log = sarif(check_graph(stack_graphs["prod"], waivers=Waivers()))
    _valid(log)
    [run] = log["runs"]
    assert run["results"] == []
    assert [d["id"] for d in run["tool"]["driver"]["rules"]] == [r.name for r in all_rules()]


def test_every_rule_has_help_and_a_help_uri_to_its_module(bad_graph: Graph) -> None:
    log = sarif(check_graph(bad_graph, waivers=Waivers()))
    for descriptor in log["runs"][0]["tool"]["driver"]["rules"]:
        rule = rule_named(descriptor["id"])
        assert descriptor["help"]["text"] == rule.remediation
        assert descriptor["helpUri"] == help_uri(rule)
        assert (Path(__file__).resolve().parents[2] / rule_file(rule)).is_file()


def test_help_uris_point_at_the_commit_under_test_on_github() -> None:
    rule = rule_named("kubernetes-object-require-cluster-admission")
    environ = {"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "acme/aiinfra",
               "GITHUB_SHA": "0123abc"}
    assert help_uri(rule, environ) == ("https://github.com/acme/aiinfra/blob/0123abc/policies/"
                                       "kubernetes/object_require_cluster_admission.py")
    assert help_uri(rule, {}).startswith("file://")
    assert help_uri(rule, {}).endswith("/policies/kubernetes/object_require_cluster_admission.py")


def test_results_point_at_the_component_the_resource_and_the_stack_file(
        bad_graph: Graph) -> None:
    log = sarif(check_graph(bad_graph, waivers=Waivers()))
    result = next(r for r in log["runs"][0]["results"]
                  if r["ruleId"] == "kubernetes-object-require-cluster-admission")
    [location] = result["locations"]
    assert location["physicalLocation"]["artifactLocation"]["uri"] == (
        "infra/components/serving.py")
    assert location["logicalLocations"] == [{
        "name": "aiinfra-prod-serving-deployment", "kind": "resource",
        "fullyQualifiedName": "kubernetes:apps/v1:Deployment::aiinfra-prod-serving-deployment"}]
    [related] = result["relatedLocations"]
    assert related["physicalLocation"]["artifactLocation"]["uri"] == "Pulumi.bad.yaml"
