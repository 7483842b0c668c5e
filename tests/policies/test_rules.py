"""The pack as a whole: naming, metadata, one module per rule, and that every rule is tested."""

from __future__ import annotations

import importlib

import pytest

from policies.core import VERBS, NotApplicable, Rule
from policies.registry import PROVIDERS, all_rules
from tests.policies import test_aws_rules, test_karpenter_rules, test_kubernetes_rules
from tests.policies.cases import mutated_messages
from tests.policies.fixtures import FIXTURES, compliant_stack, context, subject

RULES = all_rules()
RESOURCE_RULES = [r for r in RULES if not r.is_stack_rule]
# Priced by the cost engine from a rendered graph: tests/policies/test_cost.py.
STACK_RULES = [r for r in RULES if r.is_stack_rule and r.name.split("-")[0] != "cost"]
SPOT_RULE = "kubernetes-karpenter-sh-v1-nodepool-diversify-spot-instance-types"


def _ids(rules: list[Rule]) -> list[str]:
    return [rule.name for rule in rules]


def test_the_pack_has_at_least_25_rules_with_unique_names() -> None:
    assert len(RULES) >= 25
    assert len({rule.name for rule in RULES}) == len(RULES)


@pytest.mark.parametrize("rule", RULES, ids=_ids(RULES))
def test_names_are_provider_resource_verb_rule_and_match_their_module(rule: Rule) -> None:
    provider = rule.name.split("-", 1)[0]
    assert provider in PROVIDERS
    rest = rule.name.removeprefix(f"{provider}-")
    module = importlib.import_module(f"policies.{provider}.{rest.replace('-', '_')}")
    assert module.RULE is rule
    words = rest.split("-")
    verbs = [i for i, word in enumerate(words) if word in VERBS]
    assert verbs, f"{rule.name}: no verb from {sorted(VERBS)}"
    assert 1 <= verbs[0] < len(words) - 1, "resource before the verb, the rule after it"


@pytest.mark.parametrize("rule", RULES, ids=_ids(RULES))
def test_every_rule_says_what_why_how_and_how_bad(rule: Rule) -> None:
    for text in (rule.description, rule.rationale, rule.remediation):
        assert text[0].isupper(), text
        assert text.endswith("."), text
    assert rule.severity in ("low", "medium", "high", "critical")
    assert rule.enforcement_level == "mandatory"
    assert rule.tags
    assert rule.waivable or rule.fixed_level, "an unwaivable rule must not be lowered either"


@pytest.mark.parametrize("rule", RESOURCE_RULES, ids=_ids(RESOURCE_RULES))
def test_compliant_fixtures_pass_every_resource_rule(rule: Rule) -> None:
    checked = 0
    for type_token in FIXTURES:
        if not rule.applies_to(type_token):
            continue
        try:
            assert rule.messages(subject(type_token), context("prod")) == []
        except NotApplicable:
            continue
        checked += 1
    # The NodePool fixture is reserved, not spot: test_karpenter_rules covers a spot pool.
    assert checked or rule.name == SPOT_RULE


@pytest.mark.parametrize("rule", STACK_RULES, ids=_ids(STACK_RULES))
def test_the_compliant_stack_passes_every_stack_rule(rule: Rule) -> None:
    assert rule.messages(compliant_stack(), context("prod")) == []


def test_every_rule_has_a_one_field_mutation_case() -> None:
    covered = {case[0] for case in (test_kubernetes_rules.CASES + test_karpenter_rules.CASES
                                    + test_aws_rules.CASES)}
    covered.add("cost-stack-keep-monthly-cost-within-budget")  # test_cost.py
    covered.add("pack-waiver-require-valid-unexpired-entries")  # test_waivers.py
    assert covered == {rule.name for rule in RULES}


@pytest.mark.parametrize("rule", [r for r in RULES if r.environments],
                         ids=_ids([r for r in RULES if r.environments]))
def test_prod_only_rules_do_not_apply_elsewhere(rule: Rule) -> None:
    assert rule.environments == frozenset({"prod"})
    target = compliant_stack() if rule.is_stack_rule else subject(
        next(t for t in FIXTURES if rule.applies_to(t)))
    for environment in ("dev", "staging"):
        with pytest.raises(NotApplicable, match="applies to prod only"):
            rule.findings(target, context(environment))


def test_a_rule_refuses_what_it_does_not_check() -> None:
    rule = RESOURCE_RULES[0]
    with pytest.raises(TypeError, match="resource rule"):
        rule.findings(compliant_stack(), context())
    with pytest.raises(ValueError, match="exactly one of"):
        Rule(name="aws-thing-require-x", description="D.", severity="low", rationale="R.",
             remediation="F.")


# Every rule's one-field mutations, from the files that list them by provider.
MUTATIONS = [*test_aws_rules.CASES, *test_kubernetes_rules.CASES, *test_karpenter_rules.CASES]


@pytest.mark.parametrize(("rule_name", "type_token", "path", "value", "environment", "findings"),
                         MUTATIONS, ids=[f"{c[0]}:{c[2]}={c[3]!s:.20}" for c in MUTATIONS])
def test_one_changed_field_fails_with_the_exact_message(rule_name, type_token, path, value,
                                                        environment, findings) -> None:
    got, rule = mutated_messages(rule_name, type_token, path, value, environment)
    assert got == [rule.message(finding) for finding in findings]
