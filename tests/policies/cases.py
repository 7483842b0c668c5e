"""Running one rule on one fixture, or on the whole compliant stack with one fixture changed."""

from __future__ import annotations

from typing import Any

from policies.core import Rule
from policies.registry import rule_named
from tests.policies.fixtures import FIXTURES, compliant_stack, context, mutate, subject


def messages(rule: Rule, type_token: str, props: dict, environment: str = "prod") -> list[str]:
    target = (compliant_stack({type_token: props}) if rule.is_stack_rule
              else subject(type_token, props))
    return rule.messages(target, context(environment))


def mutated_messages(rule_name: str, type_token: str, path: str, value: Any,
                     environment: str) -> tuple[list[str], Rule]:
    rule = rule_named(rule_name)
    props = mutate(FIXTURES[type_token](), path, value)
    return messages(rule, type_token, props, environment), rule
