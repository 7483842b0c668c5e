"""Enforcement per environment, from the pack config files both adapters read.

``policies/config/<environment>.json`` is in ``pulumi --policy-pack-config`` format: ``"all"``
sets every rule's level, a rule's own entry (a level, or an object with ``enforcementLevel``
and settings) overrides it, and a rule without either keeps its default. The CrossGuard pack
loads the file of the stack's ``aiinfra:environment`` as its initial config; ``aiinfra check``
resolves levels the same way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from policies.core import LEVELS, Level, Rule

CONFIG_DIR = Path(__file__).resolve().parent / "config"


def pack_config(environment: str) -> dict[str, Any]:
    """The checked-in config of ``environment`` (empty when there is none)."""
    path = CONFIG_DIR / f"{environment}.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def level_of(rule: Rule, config: Mapping[str, Any]) -> Level:
    if rule.fixed_level:
        return rule.enforcement_level
    entry = config.get(rule.name)
    if isinstance(entry, Mapping):
        entry = entry.get("enforcementLevel")
    level = entry or config.get("all") or rule.enforcement_level
    if level not in LEVELS:
        raise ValueError(f"{rule.name}: unknown enforcement level {level!r} (use one of "
                         f"{', '.join(LEVELS)})")
    return level


def settings_of(rule: Rule, config: Mapping[str, Any]) -> dict[str, Any]:
    """The rule's settings from the config (defaults are filled in when the rule runs)."""
    entry = config.get(rule.name)
    if not isinstance(entry, Mapping):
        return {}
    return {key: value for key, value in entry.items() if key != "enforcementLevel"}


def blocking(level: str) -> bool:
    """Whether a violation at ``level`` fails the run (remediate counts as mandatory)."""
    return level in ("mandatory", "remediate")
