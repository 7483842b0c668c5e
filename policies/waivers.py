"""Waivers: a known violation accepted for a while, on named resources, by a named owner.

``policies/waivers.yaml`` (reviewed like code) holds a list under ``waivers:``; each entry
names a rule, a resource (Pulumi type token and name, either may be a glob; a stack-wide
finding is ``pulumi:pulumi:Stack`` named after the stack), an owner, a reason and an expiry
date, and may list the ``stacks`` it holds in (default: all). The expiry day is inclusive. A
waived violation is reported as waived and does not fail; an expired waiver fails the check
through ``pack-waiver-require-valid-unexpired-entries`` whatever the rule's level; an entry that
cannot be read waives nothing and fails the same way (fail closed).

``judge`` is the one function both adapters call: the CrossGuard pack and ``aiinfra check``
reach the same verdict on the same waivers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal, NamedTuple

import yaml

from policies.core import STACK_TYPE, Finding, Rule

WAIVERS_FILE = Path(__file__).resolve().parent / "waivers.yaml"
FIELDS = ("id", "rule", "resource", "owner", "reason", "expires")
OPTIONAL = ("stacks",)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ID = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
State = Literal["open", "waived", "expired"]


class _Loader(yaml.SafeLoader):
    """YAML without implicit timestamps: ``expires`` stays the text that was written, so a
    malformed date is reported, not raised from deep inside the parser."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


class Waiver(NamedTuple):
    id: str
    rule: str
    resource_type: str
    resource_name: str
    owner: str
    reason: str
    expires: date
    stacks: tuple[str, ...] | None = None
    line: int = 0  # where the entry starts in its file (1-based), for reports

    def holds_in(self, stack: str) -> bool:
        return self.stacks is None or stack in self.stacks

    def covers(self, rule: str, resource_type: str, resource_name: str, stack: str) -> bool:
        return (self.rule == rule and self.holds_in(stack)
                and fnmatchcase(resource_type, self.resource_type)
                and fnmatchcase(resource_name, self.resource_name))

    def expired(self, today: date) -> bool:
        """Still in force on its expiry day; expired from the day after."""
        return today > self.expires

    def describe(self) -> str:
        return (f"waiver {self.id} (owner {self.owner}, expires {self.expires.isoformat()}) for "
                f"{self.rule} on {self.resource_type} {self.resource_name}")


@dataclass(frozen=True)
class Waivers:
    entries: tuple[Waiver, ...] = ()
    errors: tuple[str, ...] = ()   # entries that could not be read: each fails the check
    source: str = "policies/waivers.yaml"

    def problems(self, stack: str, today: date) -> list[str]:
        """What fails the check: unreadable entries, and waivers expired in this stack."""
        expired = [f"{w.describe()} expired on {w.expires.isoformat()} (today is "
                   f"{today.isoformat()}): fix what it waives, or renew it with a new expiry "
                   f"and reason ({self.source}:{w.line})"
                   for w in self.entries if w.holds_in(stack) and w.expired(today)]
        return [*self.errors, *expired]


class Judged(NamedTuple):
    finding: Finding
    state: State
    waiver: Waiver | None = None

    @property
    def reported(self) -> bool:
        """Whether it is reported as a violation (a waived one is reported as waived)."""
        return self.state != "waived"

    def message(self, rule: Rule) -> str:
        text = rule.message(self.finding.message)
        if self.state == "expired" and self.waiver is not None:
            text += f" ({self.waiver.describe()} has expired.)"
        return text


def today_utc() -> date:
    return datetime.now(UTC).date()


def subject_of(finding: Finding, stack: str) -> tuple[str, str]:
    """(type, name) a waiver names for ``finding``: the resource, or the stack itself."""
    if finding.resource is None:
        return STACK_TYPE, stack
    return finding.resource.type, finding.resource.name


def judge(rule: Rule, findings: Iterable[Finding], waivers: Waivers | None, *, stack: str,
          today: date) -> list[Judged]:
    """Each finding open, waived (a waiver in force covers it) or expired (only an expired
    waiver does: the finding stands at the rule's level)."""
    judged = []
    for finding in findings:
        resource_type, name = subject_of(finding, stack)
        covering = [w for w in (waivers.entries if waivers else ())
                    if w.covers(rule.name, resource_type, name, stack)]
        current = [w for w in covering if not w.expired(today)]
        if current:
            judged.append(Judged(finding, "waived", current[0]))
        elif covering:
            judged.append(Judged(finding, "expired", covering[0]))
        else:
            judged.append(Judged(finding, "open"))
    return judged


def _expiry(value: Any) -> date | None:
    """A YYYY-MM-DD date; anything else, a timestamp included, is malformed."""
    if isinstance(value, str) and _DATE.match(value.strip()):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            return None
    return None


def _entry(raw: Any, where: str, rules: Mapping[str, Rule]) -> tuple[Waiver | None, list[str]]:
    if not isinstance(raw, Mapping):
        return None, [f"{where}: a waiver is a mapping of {', '.join(FIELDS)}"]
    errors = []
    unknown = sorted(set(raw) - set(FIELDS) - set(OPTIONAL))
    if unknown:
        errors.append(f"{where}: unknown field(s) {', '.join(map(str, unknown))} (a waiver has "
                      f"{', '.join(FIELDS)} and optionally stacks)")
    missing = [key for key in FIELDS if raw.get(key) in (None, "")]
    if missing:
        errors.append(f"{where}: missing {', '.join(missing)}")
    for key in ("id", "rule", "owner", "reason"):
        if key not in missing and not isinstance(raw[key], str):
            errors.append(f"{where}: {key} must be a string")
    if isinstance(raw.get("id"), str) and not _ID.match(raw["id"]):
        errors.append(f"{where}: id {raw['id']!r} must be kebab-case")
    rule = raw.get("rule")
    if isinstance(rule, str) and rule:
        if rule not in rules:
            errors.append(f"{where}: no rule named {rule!r}")
        elif not rules[rule].waivable:
            errors.append(f"{where}: {rule} cannot be waived (what it reports is refused "
                          "whatever a waiver says)")
    resource = raw.get("resource")
    if "resource" not in missing and not (
            isinstance(resource, Mapping) and set(resource) == {"type", "name"}
            and all(isinstance(v, str) and v for v in resource.values())):
        errors.append(f"{where}: resource must be {{type: <type token or glob>, name: "
                      "<resource name or glob>}")
    expires = _expiry(raw.get("expires"))
    if "expires" not in missing and expires is None:
        errors.append(f"{where}: expires {raw.get('expires')!s} is not a date (YYYY-MM-DD)")
    stacks = raw.get("stacks")
    if stacks is not None and not (isinstance(stacks, list) and stacks
                                   and all(isinstance(s, str) and s for s in stacks)):
        errors.append(f"{where}: stacks must be a non-empty list of stack names")
    if errors:
        return None, errors
    return Waiver(raw["id"], rule, resource["type"], resource["name"], raw["owner"].strip(),
                  raw["reason"].strip(), expires, tuple(stacks) if stacks else None), []


def parse_waivers(text: str, source: str = "policies/waivers.yaml",
                  rules: Mapping[str, Rule] | None = None) -> Waivers:
    """The waivers in ``text``; what cannot be read is kept as an error, never dropped."""
    if rules is None:
        from policies.registry import all_rules  # noqa: PLC0415 - the rules import this module

        rules = {rule.name: rule for rule in all_rules()}
    try:
        document = yaml.load(text, Loader=_Loader) if text.strip() else {"waivers": []}
        node = yaml.compose(text, Loader=_Loader) if text.strip() else None
    except yaml.YAMLError as exc:
        return Waivers((), (f"{source}: not valid YAML ({exc}): no waiver applies",), source)
    if not isinstance(document, Mapping) or not isinstance(document.get("waivers", []), list):
        return Waivers((), (f"{source}: expected a mapping with a list under 'waivers'",),
                       source)
    lines = _entry_lines(node)
    entries, errors, seen = [], [], set()
    for index, raw in enumerate(document.get("waivers") or []):
        line = lines[index] if index < len(lines) else 0
        name = raw.get("id") if isinstance(raw, Mapping) else None
        where = f"{source}:{line}: waiver #{index + 1}" + (f" ({name})" if name else "")
        waiver, problems = _entry(raw, where, rules)
        if waiver is not None and waiver.id in seen:
            problems = [f"{where}: id {waiver.id} is used twice"]
        if problems:
            errors += problems
            continue
        seen.add(waiver.id)
        entries.append(waiver._replace(line=line))
    return Waivers(tuple(entries), tuple(errors), source)


def _entry_lines(node: Any) -> list[int]:
    if not isinstance(node, yaml.MappingNode):
        return []
    for key, value in node.value:
        if getattr(key, "value", None) == "waivers" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []


def load_waivers(path: Path | None = None, rules: Mapping[str, Rule] | None = None) -> Waivers:
    """The repository's waivers (none when the file is absent)."""
    path = WAIVERS_FILE if path is None else path
    root = Path(__file__).resolve().parent.parent
    source = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
    if not path.is_file():
        return Waivers(source=source)
    return parse_waivers(path.read_text(), source, rules)
