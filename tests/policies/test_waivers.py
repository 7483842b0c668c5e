"""Waivers: read fail-closed, judged by one function, reported as waived in every format, and
loud once expired, in ``aiinfra check`` and the CrossGuard pack alike."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from pulumi_policy import PolicyCustomTimeouts, PolicyResourceOptions, ResourceValidationArgs
from pulumi_policy.proxy import unknown_checking_proxy
from rich.console import Console

from infra.render import Graph
from policies import crossguard
from policies.core import Finding, Subject
from policies.offline import check_graph
from policies.output import print_table, sarif
from policies.registry import rule_named
from policies.waivers import WAIVERS_FILE, Waivers, judge, load_waivers, parse_waivers
from tests.policies.fixtures import DEPLOYMENT

DIGEST_RULE = "kubernetes-workload-pin-images-by-digest"
WAIVER_RULE = "pack-waiver-require-valid-unexpired-entries"
EXPIRES = date(2026, 12, 31)
OWNER = "ml-platform@example.com"
BAD_DEPLOYMENT = "aiinfra-prod-serving-deployment"


def waiver_yaml(*, expires: str = "2026-12-31", name: str = "aiinfra-prod-serving-*",
                rule: str = DIGEST_RULE, extra: str = "") -> str:
    return f"""
waivers:
  - id: serving-tag-hotfix
    rule: {rule}
    resource: {{type: "kubernetes:apps/v1:Deployment", name: "{name}"}}
    owner: {OWNER}
    reason: hotfix image pushed by tag; rebuilt by digest in the next release
    expires: {expires}
{extra}"""


def _check(graph: Graph, waivers: Waivers, today: date):
    """The digest rule and the waiver rule alone, so the bad stack's other rules stay out."""
    return check_graph(graph, rules=[rule_named(DIGEST_RULE), rule_named(WAIVER_RULE)],
                       waivers=waivers, today=today)


def test_the_checked_in_file_reads_cleanly_and_waives_nothing() -> None:
    waivers = load_waivers(WAIVERS_FILE)
    assert waivers.errors == ()
    assert waivers.entries == ()


def test_the_prod_stack_passes_with_no_waivers(stack_graphs: dict[str, Graph]) -> None:
    report = check_graph(stack_graphs["prod"], waivers=Waivers())
    assert report.passed
    assert report.violations == []


def test_a_waived_violation_passes_and_is_reported_as_waived(bad_graph: Graph) -> None:
    waivers = parse_waivers(waiver_yaml())
    assert waivers.errors == ()
    report = _check(bad_graph, waivers, EXPIRES)  # the expiry day itself is inclusive
    assert report.passed
    [violation] = report.violations
    assert violation.state == "waived"
    assert violation.resource == BAD_DEPLOYMENT
    assert violation.waiver.owner == OWNER
    assert report.mandatory == []
    assert report.advisory == []
    assert report.waived == [violation]
    [result] = [r for r in report.results if r.rule.name == DIGEST_RULE]
    assert result.status == "waived"
    assert report.summary().endswith("0 mandatory and 0 advisory violations, 1 waived")
    document = report.as_dict()
    assert document["passed"] is True
    assert document["violations"][0]["state"] == "waived"
    assert document["violations"][0]["waiver"] == {
        "id": "serving-tag-hotfix", "owner": OWNER,
        "reason": "hotfix image pushed by tag; rebuilt by digest in the next release",
        "expires": "2026-12-31", "line": 3}


def test_the_same_waiver_a_day_after_expiry_fails_naming_waiver_owner_and_date(
        bad_graph: Graph) -> None:
    waivers = parse_waivers(waiver_yaml())
    report = _check(bad_graph, waivers, EXPIRES + timedelta(days=1))
    assert not report.passed
    by_rule = {v.rule: v for v in report.mandatory}
    assert set(by_rule) == {DIGEST_RULE, WAIVER_RULE}
    assert by_rule[DIGEST_RULE].state == "expired"
    assert by_rule[DIGEST_RULE].message.endswith(
        f"(waiver serving-tag-hotfix (owner {OWNER}, expires 2026-12-31) for {DIGEST_RULE} on "
        "kubernetes:apps/v1:Deployment aiinfra-prod-serving-* has expired.)")
    assert by_rule[WAIVER_RULE].finding == (
        f"waiver serving-tag-hotfix (owner {OWNER}, expires 2026-12-31) for {DIGEST_RULE} on "
        "kubernetes:apps/v1:Deployment aiinfra-prod-serving-* expired on 2026-12-31 (today is "
        "2027-01-01): fix what it waives, or renew it with a new expiry and reason "
        "(policies/waivers.yaml:3)")


def test_an_expired_waiver_fails_even_where_its_rule_is_only_advisory(bad_graph: Graph) -> None:
    waivers = parse_waivers(waiver_yaml())
    report = check_graph(bad_graph, rules=[rule_named(DIGEST_RULE), rule_named(WAIVER_RULE)],
                         config={"all": "advisory"}, waivers=waivers,
                         today=EXPIRES + timedelta(days=1))
    assert [v.rule for v in report.advisory] == [DIGEST_RULE]
    assert [v.rule for v in report.mandatory] == [WAIVER_RULE]
    assert not report.passed


def test_an_expired_waiver_fails_even_when_nothing_is_left_to_waive(
        stack_graphs: dict[str, Graph]) -> None:
    waivers = parse_waivers(waiver_yaml())
    report = check_graph(stack_graphs["prod"], waivers=waivers, today=date(2027, 3, 1))
    assert [v.rule for v in report.mandatory] == [WAIVER_RULE]


@pytest.mark.parametrize(("expires", "error"), [
    ("2026-13-01", "expires 2026-13-01 is not a date (YYYY-MM-DD)"),
    ("31/12/2026", "expires 31/12/2026 is not a date (YYYY-MM-DD)"),
    ("next-quarter", "expires next-quarter is not a date (YYYY-MM-DD)"),
    ("2026-12-31T00:00:00Z", "expires 2026-12-31T00:00:00Z is not a date (YYYY-MM-DD)"),
    ("2026-02-30", "expires 2026-02-30 is not a date (YYYY-MM-DD)"),
    ('""', "missing expires"),
])
def test_a_malformed_date_fails_closed(bad_graph: Graph, expires: str, error: str) -> None:
    waivers = parse_waivers(waiver_yaml(expires=expires))
    assert waivers.entries == ()
    assert waivers.errors == (
        f"policies/waivers.yaml:3: waiver #1 (serving-tag-hotfix): {error}",)
    report = _check(bad_graph, waivers, date(2026, 12, 1))
    assert {(v.rule, v.state) for v in report.mandatory} == {(DIGEST_RULE, "open"),
                                                             (WAIVER_RULE, "open")}


@pytest.mark.parametrize(("text", "error"), [
    (waiver_yaml().replace(f"    owner: {OWNER}\n", ""), "missing owner"),
    (waiver_yaml(extra="    why: because\n"),
     "unknown field(s) why (a waiver has id, rule, resource, owner, reason, expires and "
     "optionally stacks)"),
    (waiver_yaml(rule="kubernetes-workload-pin-images"),
     "no rule named 'kubernetes-workload-pin-images'"),
    (waiver_yaml(rule="kubernetes-object-require-cluster-admission"),
     "kubernetes-object-require-cluster-admission cannot be waived (what it reports is "
     "refused whatever a waiver says)"),
    (waiver_yaml(rule=WAIVER_RULE), f"{WAIVER_RULE} cannot be waived (what it reports is "
                                    "refused whatever a waiver says)"),
    (waiver_yaml().replace('resource: {type: "kubernetes:apps/v1:Deployment", name: '
                           '"aiinfra-prod-serving-*"}', "resource: aiinfra-prod-serving"),
     "resource must be {type: <type token or glob>, name: <resource name or glob>}"),
    (waiver_yaml(extra="    stacks: prod\n"), "stacks must be a non-empty list of stack names"),
])
def test_a_malformed_entry_waives_nothing_and_says_why(text: str, error: str) -> None:
    waivers = parse_waivers(text)
    assert waivers.entries == ()
    assert waivers.errors == (f"policies/waivers.yaml:3: waiver #1 (serving-tag-hotfix): "
                              f"{error}",)
    assert waivers.problems("prod", date(2026, 12, 1)) == list(waivers.errors)


def test_unreadable_files_and_repeated_ids_fail() -> None:
    assert parse_waivers("waivers: [unclosed").errors[0].startswith(
        "policies/waivers.yaml: not valid YAML (")
    assert parse_waivers("- a list").errors == (
        "policies/waivers.yaml: expected a mapping with a list under 'waivers'",)
    twice = waiver_yaml() + waiver_yaml().replace("waivers:\n", "")
    waivers = parse_waivers(twice)
    assert [w.id for w in waivers.entries] == ["serving-tag-hotfix"]
    assert waivers.errors == (
        "policies/waivers.yaml:10: waiver #2 (serving-tag-hotfix): id serving-tag-hotfix is "
        "used twice",)


def test_a_waiver_holds_only_in_its_stacks_and_on_matching_names(bad_graph: Graph) -> None:
    elsewhere = parse_waivers(waiver_yaml(extra="    stacks: [staging]\n"))
    report = _check(bad_graph, elsewhere, date(2026, 12, 1))
    assert [v.state for v in report.violations] == ["open"]
    # Expired in staging only: no business of the bad stack's check.
    assert _check(bad_graph, elsewhere, date(2027, 6, 1)).mandatory[0].rule == DIGEST_RULE
    other = parse_waivers(waiver_yaml(name="aiinfra-staging-*"))
    assert [v.state for v in _check(bad_graph, other, date(2026, 12, 1)).violations] == ["open"]


def test_a_stack_wide_finding_is_waived_by_naming_the_stack() -> None:
    rule = rule_named("cost-stack-keep-monthly-cost-within-budget")
    waivers = parse_waivers("""
waivers:
  - id: launch-month-budget
    rule: cost-stack-keep-monthly-cost-within-budget
    resource: {type: "pulumi:pulumi:Stack", name: prod}
    owner: finops@example.com
    reason: launch month runs both GPU shapes side by side
    expires: 2026-12-31
""")
    findings = [Finding("the projected monthly cost is $9,000, over the $8,000 budget")]
    [judged] = judge(rule, findings, waivers, stack="prod", today=date(2026, 12, 1))
    assert judged.state == "waived"
    [judged] = judge(rule, findings, waivers, stack="staging", today=date(2026, 12, 1))
    assert judged.state == "open"


def test_table_and_sarif_show_the_waiver(bad_graph: Graph) -> None:
    report = _check(bad_graph, parse_waivers(waiver_yaml()), date(2026, 12, 1))
    console = Console(record=True, width=250)
    print_table(report, console)
    text = console.export_text()
    assert "waived" in text
    assert f"waived by serving-tag-hotfix, owner {OWNER}, until 2026-12-31" in text
    [result] = sarif(report)["runs"][0]["results"]
    assert result["suppressions"] == [{
        "kind": "external", "status": "accepted",
        "justification": "hotfix image pushed by tag; rebuilt by digest in the next release "
                         f"(waiver serving-tag-hotfix, owner {OWNER}, expires 2026-12-31)",
        "location": {"physicalLocation": {
            "artifactLocation": {"uri": "policies/waivers.yaml", "uriBaseId": "%SRCROOT%"},
            "region": {"startLine": 3}}},
        "properties": {"waiver": "serving-tag-hotfix", "owner": OWNER,
                       "expires": "2026-12-31"}}]
    expired = _check(bad_graph, parse_waivers(waiver_yaml()), date(2027, 1, 1))
    assert all("suppressions" not in r for r in sarif(expired)["runs"][0]["results"])


OPTIONS = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])


def _crossguard(bad_graph: Graph, waivers: Waivers, today: date,
                monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What the CrossGuard policy of the digest rule reports for the bad Deployment."""
    monkeypatch.setattr(crossguard, "waivers", lambda: waivers)
    monkeypatch.setattr(crossguard, "today_utc", lambda: today)
    monkeypatch.setattr(crossguard, "stack_name", lambda: bad_graph.stack)
    resource = bad_graph.named(BAD_DEPLOYMENT)
    policy = next(p for p in crossguard.policies() if p.name == DIGEST_RULE)
    args = ResourceValidationArgs(
        DEPLOYMENT, unknown_checking_proxy(resource.inputs),
        f"urn:pulumi:bad::aiinfra::{DEPLOYMENT}::{BAD_DEPLOYMENT}", BAD_DEPLOYMENT, OPTIONS,
        None, {"environment": "prod"})
    reported: list[str] = []
    policy.validate(args, lambda message, urn=None: reported.append(message))
    return reported


@pytest.mark.parametrize("today", [date(2026, 12, 1), EXPIRES, EXPIRES + timedelta(days=1)])
def test_crossguard_and_check_reach_the_same_verdict_on_the_same_waivers(
        bad_graph: Graph, today: date, monkeypatch: pytest.MonkeyPatch) -> None:
    waivers = parse_waivers(waiver_yaml())
    offline = [v.message for v in _check(bad_graph, waivers, today).violations
               if v.rule == DIGEST_RULE and not v.waived]
    assert _crossguard(bad_graph, waivers, today, monkeypatch) == offline
    assert bool(offline) == (today > EXPIRES)


def test_the_crossguard_waiver_policy_reports_what_check_reports(
        bad_graph: Graph, monkeypatch: pytest.MonkeyPatch) -> None:
    from pulumi_policy import StackValidationArgs  # noqa: PLC0415

    waivers = parse_waivers(waiver_yaml())
    today = EXPIRES + timedelta(days=1)
    monkeypatch.setattr(crossguard, "waivers", lambda: waivers)
    monkeypatch.setattr(crossguard, "today_utc", lambda: today)
    monkeypatch.setattr(crossguard, "stack_name", lambda: bad_graph.stack)
    monkeypatch.setattr(crossguard, "_typed_stack_config", lambda: None)
    policy = next(p for p in crossguard.policies() if p.name == WAIVER_RULE)
    reported: list[str] = []
    policy.validate(StackValidationArgs([], {"environment": "prod"}),
                    lambda message, urn=None: reported.append(message))
    offline = [v.message for v in _check(bad_graph, waivers, today).mandatory
               if v.rule == WAIVER_RULE]
    assert reported == offline
    assert len(reported) == 1


def test_judge_prefers_a_waiver_in_force_over_a_lapsed_one() -> None:
    rule = rule_named(DIGEST_RULE)
    text = waiver_yaml(expires="2026-11-30") + waiver_yaml().replace("waivers:\n", "").replace(
        "serving-tag-hotfix", "serving-tag-hotfix-renewed")
    waivers = parse_waivers(text)
    subject = Subject(DEPLOYMENT, BAD_DEPLOYMENT, {})
    [judged] = judge(rule, [Finding("x", subject)], waivers, stack="bad",
                     today=date(2026, 12, 15))
    assert (judged.state, judged.waiver.id) == ("waived", "serving-tag-hotfix-renewed")
    assert json.dumps(judged.waiver.expires.isoformat()) == '"2026-12-31"'


def test_check_fails_on_an_expired_waiver_in_the_repository_file(
        tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner  # noqa: PLC0415

    from aiinfra.cli import app  # noqa: PLC0415
    from policies import waivers as waivers_module  # noqa: PLC0415

    path = tmp_path / "waivers.yaml"
    path.write_text(waiver_yaml(expires="2025-06-30", name="aiinfra-prod-serving-deployment"))
    monkeypatch.setattr(waivers_module, "WAIVERS_FILE", path)
    result = CliRunner().invoke(app, ["check", "prod", "--format", "json"])
    assert result.exit_code == 1, result.output
    document = json.loads(result.stdout)
    [violation] = document["violations"]
    assert violation["rule"] == WAIVER_RULE
    assert f"owner {OWNER}" in violation["finding"]
    assert "expired on 2025-06-30" in violation["finding"]
    path.write_text(waiver_yaml(expires="2099-12-31"))
    assert CliRunner().invoke(app, ["check", "prod"]).exit_code == 0
