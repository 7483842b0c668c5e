"""pack-waiver-require-valid-unexpired-entries: a lapsed or unreadable waiver fails loudly.

A waiver that expires quietly turns a known risk into a forgotten one; an entry that cannot be
read (a missing owner, a date that is not a date) must not waive anything either. Either fails
the check whatever the level of the rule it names.
"""

from __future__ import annotations

from collections.abc import Iterator

from policies.core import Context, Finding, NotApplicable, Rule, Stack
from policies.waivers import today_utc


def check(stack: Stack, context: Context) -> Iterator[Finding]:
    if context.waivers is None:
        raise NotApplicable("no waivers were loaded")
    for problem in context.waivers.problems(context.stack, context.today or today_utc()):
        yield Finding(problem)


RULE = Rule(
    name="pack-waiver-require-valid-unexpired-entries",
    description="Every waiver in policies/waivers.yaml is well-formed and not past its expiry "
                "date.",
    severity="high",
    rationale="A waiver accepts a known violation for a while, on the owner's word; once it "
              "lapses, or if it cannot be read, nobody stands behind the violation any more.",
    remediation="Fix the waived violation and delete the waiver, or renew it with a new "
                "expiry, reason and owner; give every waiver id, rule, resource {type, name}, "
                "owner, reason and expires (YYYY-MM-DD).",
    check_stack=check,
    fixed_level=True,
    waivable=False,
    tags=("governance",),
)
