"""The pure rule layer: what a rule is, what it sees, and what it reports.

Rules are plain functions over one resource (a ``Subject``) or the whole stack (a ``Stack``),
with no Pulumi runtime or CrossGuard import: the CrossGuard pack (``policies/crossguard.py``)
and the offline checker (``policies/offline.py``) are two thin adapters that build these views
and run the same functions. Properties are the engine's camelCase names; values may be read-only
``Mapping``/``Sequence`` proxies under CrossGuard, so rules test for those ABCs, not dict/list.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from functools import cached_property
from typing import Any, Literal, NamedTuple

Severity = Literal["low", "medium", "high", "critical"]
Level = Literal["advisory", "mandatory", "remediate", "disabled"]
LEVELS: tuple[Level, ...] = ("advisory", "mandatory", "remediate", "disabled")
ENVIRONMENTS = ("dev", "staging", "prod")

# Verbs a rule name may use after its provider-resource prefix (compliance-policies style).
VERBS = frozenset({"require", "enable", "disallow", "configure", "drop", "pin", "tolerate",
                   "taint", "diversify", "block", "limit", "keep"})
STACK_TYPE = "pulumi:pulumi:Stack"  # what a stack-wide finding is about, for waivers
_NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)+$")


class NotApplicable(Exception):  # noqa: N818 - a verdict, not an error
    """Raised by a rule when it does not apply to what it was given (the reason says why)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Finding(NamedTuple):
    """What a rule found (what is wrong; ``Rule.message`` adds why and how to fix it), and the
    resource it is about (None: the stack as a whole)."""

    message: str
    resource: Subject | None = None


@dataclass(frozen=True)
class Subject:
    """One resource as rules see it. ``references`` maps a property to the names of the
    resources its value points at (ids, names or ARNs of other resources in the stack)."""

    type: str
    name: str
    props: Mapping[str, Any]
    urn: str = ""
    parent: str | None = None
    references: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def get(self, path: str, default: Any = None) -> Any:
        """A nested property by dotted path (``vpcConfig.endpointPublicAccess``)."""
        value: Any = self.props
        for key in path.split("."):
            if not isinstance(value, Mapping) or key not in value:
                return default
            value = value[key]
        return value


@dataclass(frozen=True)
class Stack:
    """Every resource of one stack. ``render`` builds the ``infra.render.Graph`` the cost
    engine prices, only if a rule asks for ``graph``."""

    resources: tuple[Subject, ...]
    render: Callable[[], Any] | None = field(default=None, repr=False, compare=False)

    @cached_property
    def graph(self) -> Any:
        return self.render() if self.render is not None else None

    def of_type(self, *types: str) -> list[Subject]:
        return [r for r in self.resources if r.type in types]

    def referenced(self, subject: Subject, prop: str, type_token: str) -> list[Subject]:
        """Resources of ``type_token`` that ``subject.prop`` points at."""
        names = set(subject.references.get(prop, ()))
        return [r for r in self.of_type(type_token) if r.name in names]

    def referencing(self, target: Subject, type_token: str, prop: str) -> list[Subject]:
        """Resources of ``type_token`` whose ``prop`` points at ``target``."""
        return [r for r in self.of_type(type_token)
                if target.name in r.references.get(prop, ())]


@dataclass(frozen=True)
class Context:
    """What a rule knows besides the resource: the environment, its own settings (policy
    config, defaults filled in), when known the stack's typed ``StackConfig``, and the
    waivers in force on ``today`` (``policies.waivers``)."""

    environment: str
    stack: str = ""
    settings: Mapping[str, Any] = field(default_factory=dict)
    config: Any = None
    waivers: Any = None
    today: date | None = None

    @property
    def production(self) -> bool:
        return self.environment == "prod"

    def with_settings(self, settings: Mapping[str, Any]) -> Context:
        return replace(self, settings=dict(settings))


ResourceCheck = Callable[[Subject, Context], Iterable[str]]
StackCheck = Callable[[Stack, Context], Iterable[Finding]]


@dataclass(frozen=True)
class Rule:
    """One policy. ``rationale`` says why it matters and ``remediation`` how to fix it; a
    violation's message is the finding (what is wrong) followed by both."""

    name: str
    description: str
    severity: Severity
    rationale: str
    remediation: str
    resource_types: tuple[str, ...] = ()
    check_resource: ResourceCheck | None = None
    check_stack: StackCheck | None = None
    enforcement_level: Level = "mandatory"
    environments: frozenset[str] | None = None
    config_schema: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    url: str | None = None
    # The level no pack config changes (what the cluster refuses, an expired waiver).
    fixed_level: bool = False
    # False: no waiver may name the rule (what it reports is refused whatever a waiver says).
    waivable: bool = True

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"rule name {self.name!r} must be kebab-case")
        if (self.check_resource is None) == (self.check_stack is None):
            raise ValueError(f"{self.name}: give exactly one of check_resource, check_stack")
        if self.check_resource is not None and not self.resource_types:
            raise ValueError(f"{self.name}: a resource rule needs resource_types")
        if self.enforcement_level not in LEVELS:
            raise ValueError(f"{self.name}: unknown enforcement level {self.enforcement_level}")

    @property
    def is_stack_rule(self) -> bool:
        return self.check_stack is not None

    def applies_to(self, type_token: str) -> bool:
        return any(type_token == t or (t.endswith("*") and type_token.startswith(t[:-1]))
                   for t in self.resource_types)

    def defaults(self) -> dict[str, Any]:
        return {key: spec["default"] for key, spec in self.config_schema.items()
                if "default" in spec}

    def message(self, finding: str) -> str:
        return f"{finding}. {self.rationale} {self.remediation}"

    def findings(self, subject_or_stack: Subject | Stack, context: Context) -> list[Finding]:
        """Run the rule; raises ``NotApplicable`` outside its environments or on request."""
        if self.environments is not None and context.environment not in self.environments:
            raise NotApplicable(f"applies to {', '.join(sorted(self.environments))} only")
        context = context.with_settings(self.defaults() | dict(context.settings))
        if self.check_stack is not None:
            if not isinstance(subject_or_stack, Stack):
                raise TypeError(f"{self.name} is a stack rule: pass a Stack")
            return list(self.check_stack(subject_or_stack, context))
        if not isinstance(subject_or_stack, Subject) or self.check_resource is None:
            raise TypeError(f"{self.name} is a resource rule: pass a Subject")
        if not self.applies_to(subject_or_stack.type):
            raise NotApplicable(f"not a {', '.join(self.resource_types)}")
        return [Finding(text, subject_or_stack)
                for text in self.check_resource(subject_or_stack, context)]

    def messages(self, subject_or_stack: Subject | Stack, context: Context) -> list[str]:
        """The violation messages, as both adapters report them."""
        return [self.message(f.message) for f in self.findings(subject_or_stack, context)]


# ---- helpers shared by rules ----------------------------------------------------------------

def is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def as_list(value: Any) -> list[Any]:
    return list(value) if is_list(value) else []


def as_map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def truthy(value: Any) -> bool:
    """Pulumi passes some booleans as strings (launch template ``encrypted: "true"``)."""
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return value is True
