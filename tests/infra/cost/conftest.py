"""A small hand-built graph and a catalogue with round prices, so totals can be worked out
by hand in the tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from infra.config import parse_stack_config
from infra.cost.catalogue import parse_catalogue
from infra.render import Graph, Resource
from infra.render import render as real_render

SOURCE = {"ref": "https://example.invalid/prices-for-tests", "description": "test figures"}


def price(usd: float, unit: str = "hour") -> dict:
    return {"usd": usd, "unit": unit, "date": "2026-11-01", "source": "test"}


TEST_PRICES = {
    "ec2/on-demand/m7i.large": price(0.1),
    "ec2/on-demand/g6.xlarge": price(0.8),
    "ec2/on-demand/g6.2xlarge": price(1.0),
    "ec2/on-demand/g5.xlarge": price(1.0),
    "ec2/spot/g6.xlarge": price(0.3),
    "ec2/spot/g6.2xlarge": price(0.4),
    "ec2/spot/g5.xlarge": price(0.5),
    "ec2/reserved-1yr/g6.2xlarge": price(0.6),
    "eks/cluster/standard": price(0.1),
    "vpc/nat-gateway/hour": price(0.045),
    "vpc/nat-gateway/data": price(0.045, "gb"),
    "vpc/public-ipv4/hour": price(0.005),
    "vpc/interface-endpoint/hour": price(0.01),
    "ebs/storage/gp3": price(0.08, "gb-month"),
    "rds/postgres-multi-az/db.r7g.large": price(0.49),  # listed apart, not 2 × Single-AZ
    "rds/storage/gp3-multi-az": price(0.23, "gb-month"),
    "elasticache/redis/cache.r7g.large": price(0.219),
    "kms/key/month": price(1.0, "month"),
    "s3/storage/standard": price(0.023, "gb-month"),
    "efs/storage/standard": price(0.30, "gb-month"),
    "efs/elastic-throughput/read": price(0.03, "gb"),
    "efs/elastic-throughput/write": price(0.06, "gb"),
}


def advice(band: str) -> dict:
    return {"band": band, "savings_percent": 60, "date": "2026-11-01", "source": "test"}


# Assumed on-demand share of spot hours: <5% → 2.5%, 10-15% → 12.5%, >20% → 25%
TEST_ADVISOR = {"g6.xlarge": advice("<5%"), "g6.2xlarge": advice(">20%"),
                "g5.xlarge": advice("10-15%")}


@pytest.fixture
def catalogue():
    return parse_catalogue({"region": "us-east-1", "hours_per_month": 730,
                            "sources": {"test": SOURCE}, "prices": TEST_PRICES,
                            "spot_advisor": TEST_ADVISOR})


def stack_config(budget: float | None = 2000.0):
    values = {
        "environment": "dev", "tags": {"team": "t", "cost-center": "c"},
        "publicAccessCidrs": ["0.0.0.0/0"],
        "systemPool": {"instanceType": "m7i.large", "minSize": 2, "desiredSize": 2,
                       "maxSize": 3},
        "gpuPools": [
            {"name": "spot", "capacity": "spot",
             "instanceTypes": ["g6.xlarge", "g6.2xlarge", "g5.xlarge"], "maxNodes": 4},
            {"name": "resv", "capacity": "reserved", "reservedTerm": "1yr",
             "createCapacityReservation": True, "instanceTypes": ["g6.2xlarge"],
             "reservedNodes": 2, "maxNodes": 4},
        ],
    }
    if budget is not None:
        values["budgetMonthlyUsd"] = budget
    return parse_stack_config(values)


def template(name: str, size: int) -> Resource:
    return Resource("aws:ec2/launchTemplate:LaunchTemplate", name, "aiinfra-dev-nodes", {
        "blockDeviceMappings": [{"deviceName": "/dev/xvda",
                                 "ebs": {"volumeType": "gp3", "volumeSize": size}}]})


def node_group(name: str, types: list[str], capacity: str, sizes: tuple[int, int, int],
               pool: str) -> Resource:
    lo, want, hi = sizes
    return Resource("aws:eks/nodeGroup:NodeGroup", name, "aiinfra-dev-nodes", {
        "instanceTypes": types, "capacityType": "SPOT" if capacity == "spot" else "ON_DEMAND",
        "scalingConfig": {"minSize": lo, "desiredSize": want, "maxSize": hi},
        "labels": {"aiinfra.io/pool": pool},
        "tags": {"aiinfra.io/pool": pool, "aiinfra.io/capacity": capacity},
        "launchTemplate": {"id": f"{name}-id", "version": "1"}})


def fixture_resources() -> list[Resource]:
    net, nodes, data = "aiinfra-dev-network", "aiinfra-dev-nodes", "aiinfra-dev-database"
    return [
        Resource("aiinfra:network:Network", net, None, {}),
        Resource("aiinfra:nodes:NodePools", nodes, None, {}),
        Resource("aiinfra:data:Postgres", data, None, {}),
        Resource("aiinfra:data:Redis", "aiinfra-dev-cache", None, {}),
        Resource("aiinfra:cluster:Cluster", "aiinfra-dev-cluster", None, {}),
        Resource("aws:ec2/vpc:Vpc", "aiinfra-dev-vpc", net, {"cidrBlock": "10.0.0.0/16"}),
        Resource("aws:iam/role:Role", "aiinfra-dev-nodes-role", nodes, {}),
        Resource("aws:ec2/eip:Eip", "aiinfra-dev-nat-a", net, {"domain": "vpc"}),
        Resource("aws:ec2/natGateway:NatGateway", "aiinfra-dev-nat-a", net, {}),
        Resource("aws:ec2/vpcEndpoint:VpcEndpoint", "aiinfra-dev-ecr-api", net, {
            "vpcEndpointType": "Interface", "serviceName": "com.amazonaws.us-east-1.ecr.api",
            "subnetIds": ["a", "b"]}),
        Resource("aws:ec2/vpcEndpoint:VpcEndpoint", "aiinfra-dev-s3", net, {
            "vpcEndpointType": "Gateway", "serviceName": "com.amazonaws.us-east-1.s3"}),
        Resource("aws:eks/cluster:Cluster", "aiinfra-dev", "aiinfra-dev-cluster", {}),
        Resource("aws:kms/key:Key", "aiinfra-dev-secrets", "aiinfra-dev-cluster", {}),
        template("aiinfra-dev-system", 50),
        template("aiinfra-dev-gpu-spot-spot", 100),
        template("aiinfra-dev-gpu-resv-reserved", 100),
        node_group("aiinfra-dev-system", ["m7i.large"], "on-demand", (2, 2, 3), "system"),
        node_group("aiinfra-dev-gpu-spot-spot", ["g6.xlarge", "g6.2xlarge", "g5.xlarge"],
                   "spot", (0, 2, 4), "spot"),
        node_group("aiinfra-dev-gpu-resv-reserved", ["g6.2xlarge"], "reserved", (2, 3, 4),
                   "resv"),
        Resource("aws:ec2/capacityReservation:CapacityReservation", "aiinfra-dev-resv-odcr",
                 nodes, {"instanceType": "g6.2xlarge", "instanceCount": 2,
                         "tags": {"aiinfra.io/pool": "resv"}}),
        Resource("aws:rds/instance:Instance", "aiinfra-dev-postgres", data, {
            "engine": "postgres", "instanceClass": "db.r7g.large", "multiAz": True,
            "allocatedStorage": 100, "storageType": "gp3"}),
        Resource("aws:elasticache/replicationGroup:ReplicationGroup", "aiinfra-dev-redis",
                 "aiinfra-dev-cache", {"engine": "redis", "nodeType": "cache.r7g.large",
                                       "numCacheClusters": 2}),
        Resource("aws:s3/bucket:Bucket", "aiinfra-dev-models", None, {}),
        Resource("aws:fsx/lustreFileSystem:LustreFileSystem", "aiinfra-dev-shared", None, {}),
    ]


@pytest.fixture
def fixture_graph() -> Graph:
    return Graph("dev", stack_config(), fixture_resources())


@pytest.fixture
def runner(graphs, monkeypatch) -> CliRunner:
    """The session's rendered stacks stand in for rendering again (a temp project renders)."""

    def render(stack: str, root: Path | None = None):
        return graphs[stack] if root is None and stack in graphs else real_render(stack, root)

    monkeypatch.setattr("infra.render.render", render)
    return CliRunner()
