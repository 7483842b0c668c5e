"""Every rule of the pack, found by module: one ``RULE`` per module under a provider folder."""

from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache

from policies.core import Rule

PROVIDERS = ("kubernetes", "aws", "cost", "pack")


@lru_cache(maxsize=1)
def all_rules() -> tuple[Rule, ...]:
    """The rules sorted by name; helper modules (``_name``) hold none."""
    rules: dict[str, Rule] = {}
    for provider in PROVIDERS:
        package = importlib.import_module(f"policies.{provider}")
        for info in pkgutil.iter_modules(package.__path__):
            if info.name.startswith("_"):
                continue
            rule = importlib.import_module(f"policies.{provider}.{info.name}").RULE
            if rule.name in rules:
                raise ValueError(f"two rules are named {rule.name}")
            rules[rule.name] = rule
    return tuple(rules[name] for name in sorted(rules))


def rule_named(name: str) -> Rule:
    for rule in all_rules():
        if rule.name == name:
            return rule
    raise KeyError(f"no rule named {name!r}")
