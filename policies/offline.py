"""The offline adapter: the rules over a rendered graph (``infra.render``), no Pulumi CLI.

``aiinfra check`` and ``aiinfra preview`` use it; CrossGuard runs the same rules through
``policies/crossguard.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from policies.core import Context, Finding, NotApplicable, Rule, Stack, Subject
from policies.enforcement import level_of, pack_config, settings_of
from policies.registry import all_rules
from policies.verdict import Report, RuleResult, Violation
from policies.waivers import Waivers, judge, load_waivers, today_utc

SECRET_SIGNATURE = "4dabf18193072939515e22adb298388d"  # Pulumi's marker of a serialized secret


def mock_id(name: str) -> str:
    """The id ``infra.render``'s mocks give every resource."""
    return f"{name}-id"


def _plain(value: Any) -> Any:
    """Inputs with secrets unwrapped, as CrossGuard hands them to policies."""
    if isinstance(value, Mapping):
        if SECRET_SIGNATURE in value and "value" in value:
            return _plain(value["value"])
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def stack_view(graph: Any) -> Stack:
    """Subjects for every resource; ``references`` found by matching property values against
    the ids, names and ARNs other resources have in the rendered graph."""
    index: dict[str, set[str]] = {}
    for resource in graph.resources:
        for key in (mock_id(resource.name), resource.name, resource.inputs.get("arn")):
            if isinstance(key, str):
                index.setdefault(key, set()).add(resource.name)
    subjects = []
    for resource in graph.resources:
        props = _plain(resource.inputs)
        references = {}
        for prop, value in props.items():
            # Names repeat across types (a node group and its launch template): rules look a
            # reference up by property and type, so the name alone is enough here.
            names = {name for text in _strings(value) for name in index.get(text, ())}
            if names:
                references[prop] = tuple(sorted(names))
        subjects.append(Subject(resource.type, resource.name, props, urn=resource.urn,
                                parent=resource.parent, references=references))
    return Stack(tuple(subjects), render=lambda: graph)


def _components(stack: Stack) -> dict[str, str]:
    """Resource name -> type token of the top-level component it belongs to."""
    by_name = {s.name: s for s in stack.resources}
    owners = {}
    for subject in stack.resources:
        top = subject
        while top.parent and top.parent in by_name:
            top = by_name[top.parent]
        owners[subject.name] = top.type
    return owners


def run_rule(rule: Rule, stack: Stack, context: Context) -> tuple[list[Finding], str]:
    """(findings, reason) where a non-empty reason means the rule did not apply at all."""
    if rule.environments is not None and context.environment not in rule.environments:
        return [], f"applies to {', '.join(sorted(rule.environments))} only"
    if rule.is_stack_rule:
        try:
            return rule.findings(stack, context), ""
        except NotApplicable as exc:
            return [], exc.reason
    findings: list[Finding] = []
    applied = False
    for subject in stack.resources:
        if not rule.applies_to(subject.type):
            continue
        try:
            findings += rule.findings(subject, context)
            applied = True
        except NotApplicable:
            continue
    return findings, "" if applied else "no resource it applies to"


def check_graph(graph: Any, *, rules: Iterable[Rule] | None = None,
                config: Mapping[str, Any] | None = None, waivers: Waivers | None = None,
                today: date | None = None) -> Report:
    """Run the rules over ``graph`` at the levels its environment's pack config sets, with
    the repository's waivers (``policies/waivers.yaml``) as they stand on ``today`` (UTC)."""
    environment = graph.config.environment
    config = pack_config(environment) if config is None else config
    waivers = load_waivers() if waivers is None else waivers
    today = today or today_utc()
    stack = stack_view(graph)
    owners = _components(stack)
    base = Context(environment=environment, stack=graph.stack, config=graph.config,
                   waivers=waivers, today=today)
    results = []
    for rule in all_rules() if rules is None else rules:
        level = level_of(rule, config)
        if level == "disabled":
            results.append(RuleResult(rule, level, "disabled"))
            continue
        findings, reason = run_rule(rule, stack, base.with_settings(settings_of(rule, config)))
        violations = tuple(
            Violation(rule.name, level, rule.severity, j.message(rule),
                      j.finding.message,
                      j.finding.resource.name if j.finding.resource else None,
                      j.finding.resource.type if j.finding.resource else None,
                      owners.get(j.finding.resource.name) if j.finding.resource else None,
                      j.state, j.waiver)
            for j in judge(rule, findings, waivers, stack=graph.stack, today=today))
        status = ("failed" if any(not v.waived for v in violations) else
                  "waived" if violations else "not-applicable" if reason else "passed")
        results.append(RuleResult(rule, level, status, violations, reason))
    return Report(graph.stack, environment, tuple(results))
