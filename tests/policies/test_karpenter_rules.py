"""Karpenter rules (NodePool, EC2NodeClass, the Helm release's interruption queue): the
compliant fixtures are what the program makes of a GPU pool and pass; one changed field fails
with the exact message."""

from __future__ import annotations

import pytest

from infra.components.nodepools import gpu_pool_objects, node_pool_name
from infra.config import GpuPool
from policies.core import NotApplicable, Stack
from policies.registry import rule_named
from tests.policies.cases import messages
from tests.policies.fixtures import (
    DELETE,
    EC2_NODE_CLASS,
    HELM_RELEASE,
    NODE_POOL,
    TAGS,
    compliant_stack,
    context,
    ec2_node_class,
    karpenter_release,
    mutate,
    node_pool,
    subject,
)

POOL = "spec.template.spec"
CAPACITY = f"{POOL}.requirements.1.values"
INSTANCE_TYPES = f"{POOL}.requirements.0.values"
TAINT = "kubernetes-karpenter-sh-v1-nodepool-taint-gpu-nodes"
SPOT = "kubernetes-karpenter-sh-v1-nodepool-diversify-spot-instance-types"
BASELINE = "kubernetes-karpenter-sh-v1-nodepool-require-gpu-baseline-capacity"
CONSOLIDATION = "kubernetes-karpenter-sh-v1-nodepool-configure-gpu-safe-consolidation"
LIMITS = "kubernetes-karpenter-sh-v1-nodepool-require-limits"
IMDS = "kubernetes-karpenter-k8s-aws-v1-ec2nodeclass-require-imdsv2"
VOLUMES = "kubernetes-karpenter-k8s-aws-v1-ec2nodeclass-require-encrypted-volumes"
QUEUE = "kubernetes-helm-sh-v3-release-configure-karpenter-interruption-queue"
NO_BASELINE = ("no GPU NodePool is limited to reserved or on-demand capacity (a "
               "karpenter.sh/capacity-type requirement without spot)")
NO_TAINT = "GPU NodePool gpu-l4 has no nvidia.com/gpu:NoSchedule taint"


def _underutilized(shown: str) -> str:
    return (f"GPU NodePool gpu-l4 evicts serving pods to consolidate underutilized nodes "
            f"(consolidationPolicy {shown}) and no disruption budget sets nodes \"0\" for "
            "Underutilized")


# (rule, resource type, field, new value, environment, findings)
CASES = [
    (TAINT, NODE_POOL, f"{POOL}.taints", [], "dev", [NO_TAINT]),
    (TAINT, NODE_POOL, f"{POOL}.taints.0.effect", "PreferNoSchedule", "dev", [NO_TAINT]),
    (SPOT, NODE_POOL, CAPACITY, ["spot"], "dev",
     ["spot NodePool gpu-l4 allows 1 instance type(s) (g6.2xlarge), fewer than 3"]),
    (BASELINE, NODE_POOL, CAPACITY, ["spot"], "prod", [NO_BASELINE]),
    (BASELINE, NODE_POOL, CAPACITY, ["reserved", "on-demand", "spot"], "prod", [NO_BASELINE]),
    (BASELINE, NODE_POOL, f"{POOL}.requirements.1.operator", "Exists", "prod", [NO_BASELINE]),
    (CONSOLIDATION, NODE_POOL, "spec.disruption.consolidationPolicy",
     "WhenEmptyOrUnderutilized", "dev", [_underutilized("WhenEmptyOrUnderutilized")]),
    (CONSOLIDATION, NODE_POOL, "spec.disruption.consolidationPolicy", DELETE, "dev",
     [_underutilized("unset, so WhenEmptyOrUnderutilized")]),
    (LIMITS, NODE_POOL, "spec.limits", DELETE, "dev",
     ["NodePool gpu-l4 sets no limits on cpu, memory, nodes, nvidia.com/gpu, so Karpenter "
      "launches nodes for as many pods as are pending"]),
    (IMDS, EC2_NODE_CLASS, "spec.metadataOptions.httpTokens", "optional", "dev",
     ["EC2NodeClass gpu-l4 does not require IMDSv2 (metadataOptions.httpTokens is optional)"]),
    (IMDS, EC2_NODE_CLASS, "spec.metadataOptions.httpPutResponseHopLimit", 2, "dev",
     ["EC2NodeClass gpu-l4 lets pods reach the instance metadata service "
      "(metadataOptions.httpPutResponseHopLimit is 2, above 1)"]),
    (VOLUMES, EC2_NODE_CLASS, "spec.blockDeviceMappings.0.ebs.encrypted", False, "dev",
     ["EC2NodeClass gpu-l4 leaves /dev/xvda unencrypted (ebs.encrypted is not true)"]),
    (VOLUMES, EC2_NODE_CLASS, "spec.blockDeviceMappings.0.deviceName", "/dev/xvdb", "dev",
     ["EC2NodeClass gpu-l4 maps no root device (/dev/xvda for AL2023), so the root volume "
      "comes from the AMI, encrypted only if the account default is on"]),
    (QUEUE, HELM_RELEASE, "values.settings.interruptionQueue", DELETE, "dev",
     ["Karpenter release karpenter sets no values.settings.interruptionQueue, so it learns of "
      "spot interruptions only when the node is gone"]),
    (QUEUE, HELM_RELEASE, "values.settings.interruptionQueue", "aiinfra-interruptions", "dev",
     ["Karpenter release karpenter reads interruptions from queue aiinfra-interruptions, which "
      "is not an SQS queue (aws:sqs/queue:Queue) in this stack"]),
]


def test_the_fixtures_are_what_the_program_makes_of_a_reserved_gpu_pool() -> None:
    pool = GpuPool.model_validate({
        "name": "l4", "capacity": "reserved", "reservedTerm": "1yr",
        "createCapacityReservation": True, "reservedNodes": 2, "instanceTypes": ["g6.2xlarge"],
        "maxNodes": 4})
    node_class, pool_spec = gpu_pool_objects(
        pool, node_role="aiinfra-prod-karpenter-nodes", subnet_ids=["subnet-a-id"],
        security_group_id="sg-cluster", zones=["us-east-1a"], tags=TAGS,
        reservation_id="l4-odcr-id")
    assert node_pool()["metadata"]["name"] == ec2_node_class()["metadata"]["name"] == (
        node_pool_name(pool))
    assert node_pool()["spec"] == pool_spec
    assert ec2_node_class()["spec"] == node_class


def _spot_pool(weight: int = 50) -> dict:
    props = mutate(node_pool(), CAPACITY, ["spot"])
    props = mutate(props, INSTANCE_TYPES, ["g6.xlarge", "g6.2xlarge", "g5.2xlarge"])
    props = mutate(props, "metadata.name", "gpu-l4-spot")
    return mutate(props, "spec.weight", weight)


def test_a_spot_pool_of_three_types_passes_and_the_minimum_is_a_setting() -> None:
    rule = rule_named(SPOT)
    assert messages(rule, NODE_POOL, _spot_pool()) == []
    assert rule.messages(subject(NODE_POOL, _spot_pool()), context("dev", minimumInstanceTypes=4)
                         ) == [rule.message("spot NodePool gpu-l4-spot allows 3 instance type(s) "
                                            "(g6.xlarge, g6.2xlarge, g5.2xlarge), fewer than 4")]


def test_a_spot_pool_bounded_by_other_requirements_is_not_counted() -> None:
    rule = rule_named(SPOT)
    requirements = _spot_pool()["spec"]["template"]["spec"]["requirements"]
    open_pool = mutate(_spot_pool(), f"{POOL}.requirements", [
        {"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": ["g6", "g5"]},
        *requirements[1:]])
    assert messages(rule, NODE_POOL, open_pool) == []


def test_a_pool_that_names_no_capacity_type_is_on_demand() -> None:
    rule = rule_named(SPOT)
    requirements = node_pool()["spec"]["template"]["spec"]["requirements"]
    props = mutate(node_pool(), f"{POOL}.requirements", [requirements[0], *requirements[2:]])
    with pytest.raises(NotApplicable, match="not a spot NodePool"):
        messages(rule, NODE_POOL, props)
    assert messages(rule_named(BASELINE), NODE_POOL, props) == []


def _with_spot_pool(baseline: dict, spot_weight: int = 50) -> Stack:
    stack = compliant_stack({NODE_POOL: baseline})
    return Stack((*stack.resources, subject(NODE_POOL, _spot_pool(spot_weight), "gpu-l4-spot")))


def test_the_baseline_pool_must_fill_before_the_spot_pools() -> None:
    rule = rule_named(BASELINE)
    assert rule.messages(_with_spot_pool(node_pool()), context("prod")) == []
    outweighed = mutate(node_pool(), "spec.weight", 10)
    assert rule.messages(_with_spot_pool(outweighed), context("prod")) == [rule.message(
        "the non-spot GPU NodePool(s) gpu-l4 (weight 10) fill only after spot NodePool "
        "gpu-l4-spot (weight 50), so spot takes the GPU pods first")]
    assert rule.messages(_with_spot_pool(node_pool(), spot_weight=100), context("prod")) != []
    static = mutate(outweighed, "spec.replicas", 2)
    assert rule.messages(_with_spot_pool(static), context("prod")) == []


def test_underutilized_consolidation_passes_only_beside_a_budget_that_holds_it() -> None:
    rule = rule_named(CONSOLIDATION)
    packing = mutate(node_pool(), "spec.disruption.consolidationPolicy",
                     "WhenEmptyOrUnderutilized")
    peak = {"nodes": "0", "reasons": ["Underutilized"], "schedule": "0 7 * * mon-fri",
            "duration": "14h"}
    for budget in (peak, {"nodes": "0"}):
        held = mutate(packing, "spec.disruption.budgets", [{"nodes": "10%"}, budget])
        assert messages(rule, NODE_POOL, held) == []
    for budget in ({"nodes": "1", "reasons": ["Underutilized"]},
                   {"nodes": "0", "reasons": ["Drifted"]}):
        loose = mutate(packing, "spec.disruption.budgets", [budget])
        assert messages(rule, NODE_POOL, loose) == [
            rule.message(_underutilized("WhenEmptyOrUnderutilized"))]
    balanced = mutate(node_pool(), "spec.disruption.consolidationPolicy", "Balanced")
    assert messages(rule, NODE_POOL, balanced) == [rule.message(_underutilized("Balanced"))]


def test_cpu_node_pools_are_not_judged_as_gpu_pools() -> None:
    props = mutate(node_pool(), f"{POOL}.requirements.0.values", ["m7i.xlarge"])
    props = mutate(props, "spec.template.metadata.labels", {"aiinfra.io/pool": "cpu"})
    props = mutate(props, "spec.limits", {"cpu": "64"})
    for name in (TAINT, CONSOLIDATION):
        with pytest.raises(NotApplicable, match="not a GPU NodePool"):
            messages(rule_named(name), NODE_POOL, mutate(props, f"{POOL}.taints", []))
    assert messages(rule_named(LIMITS), NODE_POOL, props) == []
    assert messages(rule_named(BASELINE), NODE_POOL, props) == [
        rule_named(BASELINE).message(NO_BASELINE)]


@pytest.mark.parametrize("requirement", [
    {"key": "karpenter.k8s.aws/instance-gpu-count", "operator": "Gt", "values": ["0"]},
    {"key": "karpenter.k8s.aws/instance-category", "operator": "In", "values": ["g"]},
    {"key": "karpenter.k8s.aws/instance-gpu-manufacturer", "operator": "In",
     "values": ["nvidia"]},
])
def test_gpu_pools_are_found_by_any_gpu_requirement(requirement: dict) -> None:
    props = mutate(node_pool(), f"{POOL}.requirements", [requirement])
    props = mutate(props, "spec.template.metadata.labels", {})
    props = mutate(props, "spec.limits", {"cpu": "64"})
    assert messages(rule_named(TAINT), NODE_POOL, mutate(props, f"{POOL}.taints", [])) == [
        rule_named(TAINT).message(NO_TAINT)]


def test_karpenters_defaults_pass_and_the_hop_limit_is_a_setting() -> None:
    imds, volumes = rule_named(IMDS), rule_named(VOLUMES)
    assert messages(imds, EC2_NODE_CLASS, mutate(ec2_node_class(), "spec.metadataOptions",
                                                 DELETE)) == []
    assert messages(imds, EC2_NODE_CLASS, mutate(ec2_node_class(), "spec.metadataOptions",
                                                 {"httpEndpoint": "disabled",
                                                  "httpTokens": "optional"})) == []
    assert messages(volumes, EC2_NODE_CLASS, mutate(ec2_node_class(), "spec.blockDeviceMappings",
                                                    DELETE)) == []
    two_hops = mutate(ec2_node_class(), "spec.metadataOptions.httpPutResponseHopLimit", 2)
    assert imds.messages(subject(EC2_NODE_CLASS, two_hops), context("dev", maximumHopLimit=2)
                         ) == []


def test_bottlerocket_maps_its_os_volume_as_well_as_its_data_volume() -> None:
    rule = rule_named(VOLUMES)
    bottlerocket = mutate(ec2_node_class(), "spec.amiSelectorTerms.0.alias",
                          "bottlerocket@latest")
    data_only = mutate(bottlerocket, "spec.blockDeviceMappings.0.deviceName", "/dev/xvdb")
    assert messages(rule, EC2_NODE_CLASS, data_only) == [rule.message(
        "EC2NodeClass gpu-l4 maps no root device (/dev/xvda for Bottlerocket), so the root "
        "volume comes from the AMI, encrypted only if the account default is on")]
    both = mutate(data_only, "spec.blockDeviceMappings", [
        *ec2_node_class()["spec"]["blockDeviceMappings"],
        *data_only["spec"]["blockDeviceMappings"]])
    assert messages(rule, EC2_NODE_CLASS, both) == []


def test_a_custom_ami_without_mappings_has_no_defaults_to_fall_back_on() -> None:
    rule = rule_named(VOLUMES)
    custom = mutate(ec2_node_class(), "spec.amiSelectorTerms", [{"id": "ami-0123456789abcdef0"}])
    assert messages(rule, EC2_NODE_CLASS, custom) == []
    assert messages(rule, EC2_NODE_CLASS, mutate(custom, "spec.blockDeviceMappings", DELETE)) == [
        rule.message("EC2NodeClass gpu-l4 maps no block devices and Karpenter has no default "
                     "volumes for AMI family unknown, so encryption is left to the AMI and the "
                     "account default")]


def test_the_queue_rule_needs_a_karpenter_release() -> None:
    rule = rule_named(QUEUE)
    other = mutate(karpenter_release(), "chart", "oci://registry-1.docker.io/bitnami/redis")
    with pytest.raises(NotApplicable, match="no Karpenter Helm release"):
        messages(rule, HELM_RELEASE, other)
    by_repo = mutate(karpenter_release(), "chart", "karpenter")
    assert messages(rule, HELM_RELEASE, mutate(by_repo, "values.settings", {})) != []
