"""A report as a table, JSON, or SARIF 2.1.0 (for CI code-scanning annotations)."""

from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from policies.core import Rule
from policies.enforcement import blocking
from policies.verdict import Report, Violation

ROOT = Path(__file__).resolve().parent.parent
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
TOOL = "aiinfra-policies"
VERSION = "0.1.0"
# GitHub code scanning ranks security results by this score (0-10).
SECURITY_SEVERITY = {"low": "3.0", "medium": "5.5", "high": "8.0", "critical": "9.5"}
_COMPONENT = re.compile(r'"(aiinfra:[a-z]+:[A-Za-z]+)"')


def emit(report: Report, fmt: str, console: Console | None = None) -> None:
    if fmt == "json":
        print(json.dumps(report.as_dict(), indent=2))
    elif fmt == "sarif":
        print(json.dumps(sarif(report), indent=2))
    else:
        print_table(report, console)


def print_table(report: Report, console: Console | None = None) -> None:
    """One row per violation (what is wrong), then why and how to fix, once per rule."""
    console = console or Console()
    failed = [r for r in report.results if r.violations]
    failed.sort(key=lambda r: (r.status == "waived", not blocking(r.level), r.rule.name))
    if failed:
        table = Table(title=f"policy violations · stack {report.stack} ({report.environment})")
        for column in ("level", "rule", "resource", "finding"):
            table.add_column(column, overflow="fold")
        for result in failed:
            for violation in result.violations:
                style = ("red" if violation.blocking else "dim" if violation.waived
                         else "yellow")
                level = "waived" if violation.waived else result.level
                finding = violation.finding
                if violation.waiver is not None:
                    verb = "waived by" if violation.waived else "expired:"
                    finding += (f" ({verb} {violation.waiver.id}, owner "
                                f"{violation.waiver.owner}, until "
                                f"{violation.waiver.expires.isoformat()})")
                table.add_row(f"[{style}]{level}[/{style}]", result.rule.name,
                              violation.resource or "(stack)", escape(finding))
        console.print(table)
        for result in failed:
            if result.status == "waived":
                continue
            console.print(f"[bold]{result.rule.name}[/bold] ({result.rule.severity}): "
                          f"{result.rule.rationale} {result.rule.remediation}", highlight=False)
    console.print(report.summary(), style="green" if report.passed else "bold red",
                  highlight=False, soft_wrap=True)


@lru_cache(maxsize=4)
def component_files(root: Path = ROOT) -> dict[str, tuple[str, int]]:
    """Component type token -> (file, line) where ``infra/components`` declares it."""
    found: dict[str, tuple[str, int]] = {}
    for path in sorted((root / "infra" / "components").glob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            for token in _COMPONENT.findall(line):
                found.setdefault(token, (path.relative_to(root).as_posix(), number))
    return found


def _physical(uri: str, line: int) -> dict:
    return {"physicalLocation": {"artifactLocation": {"uri": uri, "uriBaseId": "%SRCROOT%"},
                                 "region": {"startLine": max(line, 1)}}}


def _location(violation: Violation, stack: str) -> dict:
    """Where the resource is declared (its component's source), else the stack file; the
    resource itself as a logical location."""
    uri, line = f"Pulumi.{stack}.yaml", 1
    if violation.component in component_files():
        uri, line = component_files()[violation.component]
    location = _physical(uri, line)
    if violation.resource:
        location["logicalLocations"] = [{
            "name": violation.resource, "kind": "resource",
            "fullyQualifiedName": f"{violation.resource_type}::{violation.resource}"}]
    return location


def rule_file(rule: Rule, root: Path = ROOT) -> str:
    """The rule's module, relative to the repository."""
    provider = rule.name.split("-", 1)[0]
    module = rule.name.removeprefix(f"{provider}-").replace("-", "_")
    return f"policies/{provider}/{module}.py"


def help_uri(rule: Rule, environ: dict | None = None) -> str:
    """The rule's own page, else its source: on GitHub when run by Actions (the commit under
    test), else in the checkout. Code scanning links the alert's "Show more" to it."""
    if rule.url:
        return rule.url
    environ = os.environ if environ is None else environ
    server, repository = environ.get("GITHUB_SERVER_URL"), environ.get("GITHUB_REPOSITORY")
    if server and repository:
        return f"{server}/{repository}/blob/{environ.get('GITHUB_SHA') or 'HEAD'}/" \
               f"{rule_file(rule)}"
    return (ROOT / rule_file(rule)).as_uri()


def _suppressions(violation: Violation) -> list[dict]:
    """SARIF's record of an accepted result: the waiver, its owner, reason and expiry."""
    waiver = violation.waiver
    if not violation.waived or waiver is None:
        return []
    return [{"kind": "external", "status": "accepted",
             "justification": f"{waiver.reason} (waiver {waiver.id}, owner {waiver.owner}, "
                              f"expires {waiver.expires.isoformat()})",
             "location": _physical("policies/waivers.yaml", waiver.line),
             "properties": {"waiver": waiver.id, "owner": waiver.owner,
                            "expires": waiver.expires.isoformat()}}]


def _sarif_level(level: str) -> str:
    return "error" if blocking(level) else "none" if level == "disabled" else "warning"


def sarif(report: Report) -> dict:
    """One run: every rule as a reporting descriptor, every violation as a result."""
    rules = [result.rule for result in report.results]
    index = {rule.name: i for i, rule in enumerate(rules)}
    levels = {result.rule.name: result.level for result in report.results}
    descriptors = [{
        "id": rule.name,
        "shortDescription": {"text": rule.description},
        "fullDescription": {"text": f"{rule.description} {rule.rationale}"},
        "help": {"text": rule.remediation,
                 "markdown": f"{rule.rationale}\n\n**Fix:** {rule.remediation}"},
        "helpUri": help_uri(rule),
        "defaultConfiguration": {"level": _sarif_level(levels[rule.name]),
                                 "enabled": levels[rule.name] != "disabled"},
        "properties": {"tags": list(rule.tags), "severity": rule.severity,
                       "security-severity": SECURITY_SEVERITY[rule.severity]},
    } for rule in rules]
    results = [{
        "ruleId": v.rule,
        "ruleIndex": index[v.rule],
        "level": _sarif_level(v.level),
        "message": {"text": v.message},
        "locations": [_location(v, report.stack)],
        "relatedLocations": [{"id": 1, **_physical(f"Pulumi.{report.stack}.yaml", 1),
                              "message": {"text": f"stack {report.stack}"}}],
        "partialFingerprints": {
            "aiinfraResource/v1": f"{v.rule}:{v.resource_type}:{v.resource}"},
        **({"suppressions": _suppressions(v)} if v.waived else {}),
        "properties": {"enforcementLevel": v.level, "state": v.state},
    } for v in report.violations]
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": TOOL, "version": VERSION, "rules": descriptors}},
            "automationDetails": {"id": f"aiinfra-check/{report.stack}/"},
            "originalUriBaseIds": {"%SRCROOT%": {"uri": ROOT.as_uri() + "/"}},
            "invocations": [{"executionSuccessful": True}],
            "results": results,
            "properties": {"stack": report.stack, "environment": report.environment,
                           "passed": report.passed},
        }],
    }
