"""What a policy run found: per-rule results, violations, and the one-line summary."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from policies.core import Level, Rule
from policies.enforcement import blocking
from policies.waivers import State, Waiver

Status = Literal["passed", "failed", "waived", "not-applicable", "disabled"]


@dataclass(frozen=True)
class Violation:
    rule: str
    level: Level
    severity: str
    message: str                      # finding, why it matters, how to fix it
    finding: str = ""                 # what is wrong, alone
    resource: str | None = None       # the resource's name; None: the stack as a whole
    resource_type: str | None = None
    component: str | None = None      # type token of the component the resource belongs to
    state: State = "open"             # waived: a waiver in force covers it; expired: a lapsed one
    waiver: Waiver | None = None

    @property
    def waived(self) -> bool:
        return self.state == "waived"

    @property
    def blocking(self) -> bool:
        return blocking(self.level) and not self.waived

    def as_dict(self) -> dict:
        waiver = self.waiver
        return {"rule": self.rule, "level": self.level, "severity": self.severity,
                "resource": self.resource, "type": self.resource_type,
                "component": self.component, "finding": self.finding,
                "message": self.message, "state": self.state,
                "waiver": None if waiver is None else {
                    "id": waiver.id, "owner": waiver.owner, "reason": waiver.reason,
                    "expires": waiver.expires.isoformat(), "line": waiver.line}}


@dataclass(frozen=True)
class RuleResult:
    rule: Rule
    level: Level
    status: Status
    violations: tuple[Violation, ...] = ()
    reason: str = ""


@dataclass(frozen=True)
class Report:
    stack: str
    environment: str
    results: tuple[RuleResult, ...]

    @property
    def violations(self) -> list[Violation]:
        return [v for result in self.results for v in result.violations]

    @property
    def mandatory(self) -> list[Violation]:
        return [v for v in self.violations if v.blocking]

    @property
    def advisory(self) -> list[Violation]:
        return [v for v in self.violations if not v.blocking and not v.waived]

    @property
    def waived(self) -> list[Violation]:
        return [v for v in self.violations if v.waived]

    @property
    def passed(self) -> bool:
        return not self.mandatory

    def count(self, status: Status) -> int:
        return sum(1 for result in self.results if result.status == status)

    def summary(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        return (f"policies {verdict} · stack {self.stack} ({self.environment}) · "
                f"{len(self.results)} rules: {self.count('passed')} passed, "
                f"{self.count('failed')} failed, {self.count('waived')} waived, "
                f"{self.count('not-applicable')} not applicable, "
                f"{self.count('disabled')} disabled · {len(self.mandatory)} mandatory and "
                f"{len(self.advisory)} advisory violations, {len(self.waived)} waived")

    def as_dict(self) -> dict:
        return {
            "stack": self.stack, "environment": self.environment, "passed": self.passed,
            "summary": self.summary(),
            "rules": [{"name": r.rule.name, "level": r.level, "severity": r.rule.severity,
                       "status": r.status, "reason": r.reason,
                       "violations": len(r.violations)} for r in self.results],
            "violations": [v.as_dict() for v in self.violations],
        }
