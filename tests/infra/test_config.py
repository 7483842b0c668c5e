"""Stack configuration: the three stacks are valid; bad ones fail before any resource."""

from __future__ import annotations

import copy

import pytest

from infra.config import ConfigError, parse_stack_config
from infra.render import load_stack, stack_values


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_stack_files_are_valid(stack: str) -> None:
    config = load_stack(stack)
    assert config.environment == stack
    assert config.tags["team"] == "ml-platform"


def test_stacks_differ_in_size() -> None:
    dev, prod = load_stack("dev"), load_stack("prod")
    assert dev.database.instance_class != prod.database.instance_class
    assert sum(p.max_nodes for p in prod.gpu_pools) > sum(p.max_nodes for p in dev.gpu_pools)


def _with(change) -> dict:
    values = copy.deepcopy(stack_values("dev"))
    change(values)
    return values


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda v: v["database"].update(instanceClass="db.x9.huge"),
         "aiinfra:database.instanceClass: unknown RDS instance class 'db.x9.huge'"),
        (lambda v: v["gpuPools"][0].update(maxNodes=0),
         "aiinfra:gpuPools.0.maxNodes: Input should be greater than or equal to 1"),
        (lambda v: v["gpuPools"][0].update(minSize=1),
         "aiinfra:gpuPools.0.minSize: Extra inputs are not permitted"),
        (lambda v: v["gpuPools"][0].update(
            instanceTypes=["g6.xlarge", "g6.12xlarge", "g5.xlarge"]),
         "one GPU shape per pool (GPU count and memory), got g6.xlarge (1 × 24 GiB), "
         "g6.12xlarge (4 × 24 GiB), g5.xlarge (1 × 24 GiB): split them into pools"),
        (lambda v: v["gpuPools"][0].update(capacity="reserved", reservedTerm="1yr",
                                           createCapacityReservation=True,
                                           instanceTypes=["g6.xlarge"]),
         "reservedNodes (the reservation's size) is required, at most maxNodes"),
        (lambda v: v["gpuPools"][0].update(reservedNodes=2),
         "reservedTerm, createCapacityReservation and reservedNodes apply to reserved pools"),
        (lambda v: v["gpuPools"][0].update(amiVersion="2025-11-20"),
         "aiinfra:gpuPools.0.amiVersion: String should match pattern"),
        (lambda v: v["gpuPools"][0].update(instanceTypes=["g6.xlarge"]),
         "spot pool 'l4' lists 1 instance type(s): spot pools need at least 3"),
        (lambda v: v["gpuPools"][0].update(instanceTypes=["g6.xlarge", "m7i.large", "g5.xlarge"]),
         "m7i.large has no GPU"),
        (lambda v: v["gpuPools"][0].update(instanceTypes=["g6.xlarge", "g9.huge", "g5.xlarge"]),
         "unknown instance type 'g9.huge'"),
        (lambda v: v["tags"].pop("cost-center"), "tags must include cost-center"),
        (lambda v: v["gpuPools"][0].update(capacity="reserved"),
         "reserved pool 'l4' needs reservedTerm"),
        (lambda v: v.update(vpcCidr="10.0.0.0/24"), "vpcCidr 10.0.0.0/24 is too small"),
    ],
)
def test_invalid_config_says_what_to_fix(change, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_stack_config(_with(change), source="Pulumi.dev.yaml")
    assert message in str(error.value)
    assert str(error.value).startswith("Pulumi.dev.yaml: invalid stack configuration")


def test_prod_rules_are_enforced() -> None:
    values = copy.deepcopy(stack_values("dev"))
    values["environment"] = "prod"
    with pytest.raises(ConfigError) as error:
        parse_stack_config(values)
    text = str(error.value)
    for rule in ("database.multiAz must be true", "database.deletionProtection must be true",
                 "backupRetentionDays must be at least 7", "endpoint must be private",
                 "serving.minReplicas must be at least 2", "natGateways must be per-az",
                 "on-demand or reserved pool as a baseline"):
        assert rule in text


def test_a_bad_stack_fails_before_any_resource(tmp_path, monkeypatch) -> None:
    from infra.render import render

    (tmp_path / "Pulumi.yaml").write_text("name: aiinfra\nruntime: python\n")
    (tmp_path / "Pulumi.bad.yaml").write_text(
        "config:\n  aiinfra:environment: dev\n  aiinfra:tags: {team: a, cost-center: b}\n"
        "  aiinfra:gpuPools:\n    - {name: bad, capacity: spot, instanceTypes: [g6.xlarge],"
        " maxNodes: 1}\n")
    with pytest.raises(ConfigError, match="spot pools need at least 3"):
        render("bad", tmp_path)


def test_pool_names_must_suit_aws_names() -> None:
    with pytest.raises(ConfigError, match="pool name 'X_1': use 2-31 lowercase letters"):
        parse_stack_config(_with(lambda v: v["gpuPools"][0].update(name="X_1")))
