"""The CrossGuard adapter: policies built from the rules, validated the way the analyzer calls
them (no PolicyPack: constructing one starts a server and blocks)."""

from __future__ import annotations

import pytest
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.policy import _NotApplicableError
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError, unknown_checking_proxy

from infra.cost import projected_monthly_cost
from infra.render import Graph
from policies import crossguard
from policies.crossguard import pack_arguments, policies
from policies.offline import stack_view
from policies.registry import all_rules, rule_named
from tests.policies.fixtures import (
    HELM_RELEASE,
    LAUNCH_TEMPLATE,
    NODE_GROUP,
    NODE_POOL,
    RDS_INSTANCE,
    SQS_QUEUE,
    karpenter_release,
    launch_template,
    mutate,
    node_group,
    node_pool,
    rds_instance,
)

OPTIONS = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])
POLICIES = {policy.name: policy for policy in policies()}


def _resource_args(type_token: str, props: dict, config: dict) -> ResourceValidationArgs:
    return ResourceValidationArgs(type_token, unknown_checking_proxy(props),
                                  f"urn:pulumi:prod::aiinfra::{type_token}::db", "db", OPTIONS,
                                  None, config)


def _validate(policy, args) -> list[tuple[str, str | None]]:
    reported: list[tuple[str, str | None]] = []
    policy.validate(args, lambda message, urn=None: reported.append((message, urn)))
    return reported


def _policy_resource(type_token: str, name: str, props: dict,
                     dependencies: dict | None = None) -> PolicyResource:
    return PolicyResource(type_token, unknown_checking_proxy(props),
                          f"urn:pulumi:prod::aiinfra::{type_token}::{name}", name, OPTIONS, None,
                          None, [], dependencies or {})


def test_every_rule_becomes_a_policy_of_its_kind_with_its_metadata() -> None:
    assert set(POLICIES) == {rule.name for rule in all_rules()}
    for rule in all_rules():
        policy = POLICIES[rule.name]
        kind = StackValidationPolicy if rule.is_stack_rule else ResourceValidationPolicy
        assert isinstance(policy, kind)
        assert policy.description == rule.description
        assert policy.severity == Severity(rule.severity)
        assert policy.remediation_steps == rule.remediation
        assert policy.enforcement_level == EnforcementLevel.MANDATORY
        assert set(policy.config_schema.properties) == {"environment", *rule.config_schema}


def test_a_resource_policy_reports_the_rules_message_on_the_resource() -> None:
    rule = rule_named("aws-rds-instance-enable-multi-az")
    args = _resource_args(RDS_INSTANCE, mutate(rds_instance(), "multiAz", False),
                          {"environment": "prod"})
    assert _validate(POLICIES[rule.name], args) == [(rule.message(
        "RDS instance db runs in one availability zone (multiAz is not true)"), args.urn)]


def test_a_compliant_resource_passes_and_other_types_are_skipped() -> None:
    policy = POLICIES["aws-rds-instance-enable-multi-az"]
    assert _validate(policy, _resource_args(RDS_INSTANCE, rds_instance(),
                                            {"environment": "prod"})) == []
    assert _validate(policy, _resource_args(NODE_GROUP, node_group(),
                                            {"environment": "prod"})) == []


def test_a_prod_only_rule_is_not_applicable_in_dev() -> None:
    args = _resource_args(RDS_INSTANCE, mutate(rds_instance(), "multiAz", False),
                          {"environment": "dev"})
    with pytest.raises(_NotApplicableError):
        _validate(POLICIES["aws-rds-instance-enable-multi-az"], args)


def test_policy_config_settings_reach_the_rule() -> None:
    rule = rule_named("aws-rds-instance-configure-backup-retention")
    args = _resource_args(RDS_INSTANCE, rds_instance(),
                          {"environment": "prod", "minimumDays": 30})
    assert _validate(POLICIES[rule.name], args) == [(rule.message(
        "RDS instance db keeps backups for 14 day(s), fewer than 30 in prod"), args.urn)]


def test_a_value_unknown_during_preview_is_left_to_the_analyzer() -> None:
    args = _resource_args(RDS_INSTANCE, mutate(rds_instance(), "multiAz", UNKNOWN_STRING_VALUE),
                          {"environment": "prod"})
    with pytest.raises(UnknownValueError):
        _validate(POLICIES["aws-rds-instance-enable-multi-az"], args)


def test_a_stack_policy_follows_property_dependencies() -> None:
    rule = rule_named("aws-eks-nodegroup-require-imdsv2")
    template = _policy_resource(LAUNCH_TEMPLATE, "system", mutate(
        launch_template(), "metadataOptions.httpTokens", "optional"))
    group = _policy_resource(NODE_GROUP, "system", node_group(), {"launchTemplate": [template]})
    args = StackValidationArgs([template, group], {"environment": "dev"})
    assert _validate(POLICIES[rule.name], args) == [(rule.message(
        "node group system: launch template system does not require IMDSv2 "
        "(metadataOptions.httpTokens is optional)"), group.urn)]


def test_a_stack_level_finding_is_reported_without_a_resource() -> None:
    rule = rule_named("kubernetes-karpenter-sh-v1-nodepool-require-gpu-baseline-capacity")
    pool = _policy_resource(NODE_POOL, "gpu-l4", mutate(
        node_pool(), "spec.template.spec.requirements.1.values", ["spot"]))
    reported = _validate(POLICIES[rule.name], StackValidationArgs([pool],
                                                                  {"environment": "prod"}))
    assert [urn for _, urn in reported] == [None]


def test_karpenter_objects_are_judged_through_the_engines_proxies() -> None:
    rule = rule_named("kubernetes-karpenter-sh-v1-nodepool-taint-gpu-nodes")
    args = _resource_args(NODE_POOL, mutate(node_pool(), "spec.template.spec.taints", []),
                          {"environment": "dev"})
    assert _validate(POLICIES[rule.name], args) == [(rule.message(
        "GPU NodePool gpu-l4 has no nvidia.com/gpu:NoSchedule taint"), args.urn)]


def test_the_interruption_queue_is_found_by_its_physical_name() -> None:
    # Under the engine the queue's name is Pulumi's auto-name, not the resource name.
    physical = "aiinfra-prod-interruptions-4f2c9a1"
    queue = _policy_resource(SQS_QUEUE, "aiinfra-prod-interruptions", {"name": physical})
    release = _policy_resource(HELM_RELEASE, "aiinfra-prod-karpenter", mutate(
        karpenter_release(), "values.settings.interruptionQueue", physical))
    policy = POLICIES["kubernetes-helm-sh-v3-release-configure-karpenter-interruption-queue"]
    assert _validate(policy, StackValidationArgs([queue, release], {"environment": "prod"})) == []
    assert len(_validate(policy, StackValidationArgs([release], {"environment": "prod"}))) == 1


@pytest.mark.parametrize(("environment", "advisory"), [("dev", True), ("prod", False)])
def test_the_pack_starts_with_its_environments_levels(environment: str, advisory: bool) -> None:
    arguments = pack_arguments(environment)
    assert arguments["name"] == "aiinfra"
    assert len(arguments["policies"]) == len(all_rules())
    level = arguments["initial_config"]["aws-eks-nodegroup-require-imdsv2"]["enforcementLevel"]
    assert level == (EnforcementLevel.ADVISORY if advisory else EnforcementLevel.MANDATORY)
    floor = arguments["initial_config"]["aws-s3-bucket-block-public-access"]
    assert floor == {"enforcementLevel": EnforcementLevel.MANDATORY}


def test_the_budget_policy_prices_the_engines_resources_as_offline(
        stack_graphs: dict[str, Graph], monkeypatch: pytest.MonkeyPatch) -> None:
    graph = stack_graphs["dev"]
    monkeypatch.setattr(crossguard, "_typed_stack_config", lambda: graph.config)
    resources = [_policy_resource(s.type, s.name, s.props) for s in stack_view(graph).resources]
    rule = rule_named("cost-stack-keep-monthly-cost-within-budget")
    reported = _validate(POLICIES[rule.name], StackValidationArgs(
        resources, {"environment": "dev", "budgetMonthlyUsd": 100}))
    projected = projected_monthly_cost(graph)
    assert reported == [(rule.message(
        f"the projected monthly cost is ${projected:,.0f}, ${projected - 100:,.0f} "
        f"({projected / 100 - 1:.0%}) over the $100 budget"), None)]


def test_the_clusters_admission_is_judged_through_the_engines_proxies(
        stack_graphs: dict[str, Graph], monkeypatch: pytest.MonkeyPatch) -> None:
    """The CEL of the rendered policies, run by the pack on what the engine hands it."""
    monkeypatch.setattr(crossguard, "_typed_stack_config", lambda: None)
    rule = rule_named("kubernetes-object-require-cluster-admission")
    graph = stack_graphs["prod"]
    kinds = ("Namespace", "Deployment", "ScaledObject", "ValidatingAdmissionPolicy",
             "ValidatingAdmissionPolicyBinding")
    chosen = [r for r in graph.resources if r.type.rsplit(":", 1)[-1] in kinds]
    resources = [_policy_resource(r.type, r.name, r.inputs) for r in chosen]
    assert _validate(POLICIES[rule.name], StackValidationArgs(resources,
                                                              {"environment": "prod"})) == []
    deployment = next(r for r in chosen if r.name == "aiinfra-prod-serving-deployment")
    untolerated = mutate(deployment.inputs, "spec.template.spec.tolerations", [])
    resources = [_policy_resource(r.type, r.name, untolerated if r is deployment else r.inputs)
                 for r in chosen]
    [(message, urn)] = _validate(POLICIES[rule.name],
                                 StackValidationArgs(resources, {"environment": "prod"}))
    assert message == rule.message(
        "Deployment aiinfra/aiinfra-serving: refused by ValidatingAdmissionPolicy "
        "aiinfra-gpu-nodes: the pod requests nvidia.com/gpu but does not tolerate the "
        "nvidia.com/gpu:NoSchedule taint")
    assert urn.endswith("::aiinfra-prod-serving-deployment")


def test_an_object_unknown_during_a_preview_is_left_for_the_update(
        stack_graphs: dict[str, Graph], monkeypatch: pytest.MonkeyPatch) -> None:
    from pulumi_policy import proxy  # noqa: PLC0415

    from policies.kubernetes._admission import UNKNOWNS  # noqa: PLC0415

    assert {getattr(proxy, name) for name in dir(proxy)
            if name.startswith("UNKNOWN_") and name.endswith("_VALUE")} == UNKNOWNS
    monkeypatch.setattr(crossguard, "_typed_stack_config", lambda: None)
    rule = rule_named("kubernetes-object-require-cluster-admission")
    graph = stack_graphs["prod"]
    chosen = [r for r in graph.resources if r.type.rsplit(":", 1)[-1] in (
        "Namespace", "Deployment", "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding")]
    deployment = next(r for r in chosen if r.name == "aiinfra-prod-serving-deployment")
    building = mutate(mutate(deployment.inputs, "spec.template.spec.tolerations", []),
                      "spec.template.spec.containers.0.image", UNKNOWN_STRING_VALUE)
    resources = [_policy_resource(r.type, r.name, building if r is deployment else r.inputs)
                 for r in chosen]
    assert _validate(POLICIES[rule.name], StackValidationArgs(resources,
                                                              {"environment": "prod"})) == []
