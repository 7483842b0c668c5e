"""Enforcement per environment: the checked-in pack configs and how a level is resolved."""

from __future__ import annotations

import json

import pytest

from policies.core import ENVIRONMENTS, LEVELS
from policies.enforcement import CONFIG_DIR, blocking, level_of, pack_config, settings_of
from policies.registry import all_rules, rule_named

RULE = rule_named("kubernetes-karpenter-sh-v1-nodepool-diversify-spot-instance-types")


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_each_environment_has_a_config_naming_only_known_rules(environment: str) -> None:
    config = json.loads((CONFIG_DIR / f"{environment}.json").read_text())
    names = {rule.name for rule in all_rules()}
    for key, value in config.items():
        assert key == "all" or key in names, key
        level = value.get("enforcementLevel") if isinstance(value, dict) else value
        assert level is None or level in LEVELS


def test_dev_is_advisory_but_for_its_security_floor_and_prod_is_mandatory() -> None:
    dev, prod = pack_config("dev"), pack_config("prod")
    dev_levels = {rule.name: level_of(rule, dev) for rule in all_rules()}
    assert {name for name, level in dev_levels.items() if level == "mandatory"} == {
        "aws-rds-instance-disallow-public-access", "aws-rds-instance-enable-storage-encryption",
        "aws-elasticache-replicationgroup-require-auth", "aws-s3-bucket-block-public-access",
        "kubernetes-workload-disallow-privilege-escalation",
        # Fixed: the cluster refuses in dev too, and a lapsed waiver fails everywhere.
        "kubernetes-object-require-cluster-admission",
        "pack-waiver-require-valid-unexpired-entries"}
    assert {level_of(rule, prod) for rule in all_rules()} == {"mandatory"}
    assert {level_of(rule, pack_config("staging")) for rule in all_rules()} == {"mandatory"}


def test_a_rules_own_entry_beats_all_which_beats_its_default() -> None:
    assert level_of(RULE, {}) == "mandatory"
    assert level_of(RULE, {"all": "advisory"}) == "advisory"
    assert level_of(RULE, {"all": "advisory", RULE.name: "disabled"}) == "disabled"
    assert level_of(RULE, {"all": "advisory",
                           RULE.name: {"enforcementLevel": "remediate"}}) == "remediate"
    assert level_of(RULE, {RULE.name: {"minimumInstanceTypes": 4}}) == "mandatory"


@pytest.mark.parametrize("name", ["kubernetes-object-require-cluster-admission",
                                  "pack-waiver-require-valid-unexpired-entries"])
def test_a_fixed_level_is_not_lowered_by_any_config(name: str) -> None:
    rule = rule_named(name)
    assert rule.fixed_level
    assert level_of(rule, {"all": "advisory", name: "disabled"}) == "mandatory"


def test_settings_come_from_the_rules_entry_without_its_level() -> None:
    config = {RULE.name: {"enforcementLevel": "advisory", "minimumInstanceTypes": 4}}
    assert settings_of(RULE, config) == {"minimumInstanceTypes": 4}
    assert settings_of(RULE, {RULE.name: "advisory"}) == {}


def test_an_unknown_level_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="unknown enforcement level 'strict'"):
        level_of(RULE, {"all": "strict"})


def test_mandatory_and_remediate_block_advisory_and_disabled_do_not() -> None:
    assert [blocking(level) for level in LEVELS] == [False, True, True, False]


def test_an_environment_without_a_file_keeps_every_default() -> None:
    assert pack_config("sandbox") == {}
