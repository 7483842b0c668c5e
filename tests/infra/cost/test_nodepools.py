"""Karpenter NodePools priced by hand: node counts from the workload and the limits, the
cheapest allowed type, spot with its on-demand fallback, reserved terms, the saving against
all on-demand, and the EKS control plane's support rate."""

from __future__ import annotations

import pytest

from infra.components.nodepools import gpu_pool_objects
from infra.config import parse_stack_config
from infra.cost import estimate, load_catalogue
from infra.cost.karpenter import NodePoolShape
from infra.cost.model import Range
from infra.cost.usage import parse_usage
from infra.render import Graph, Resource

BASE = {"environment": "dev", "tags": {"team": "t", "cost-center": "c"},
        "publicAccessCidrs": ["0.0.0.0/0"],
        "serving": {"minReplicas": 1, "maxReplicas": 10}}
POOLS = [
    {"name": "spot", "capacity": "spot", "instanceTypes": ["g6.xlarge", "g6.2xlarge", "g5.xlarge"],
     "maxNodes": 4},
    {"name": "resv", "capacity": "reserved", "reservedTerm": "1yr",
     "createCapacityReservation": True, "instanceTypes": ["g6.2xlarge"], "reservedNodes": 2,
     "maxNodes": 4},
]


def graph_of(pools: list[dict], *, reservations: dict[str, int] | None = None,
             min_replicas: int = 1, max_replicas: int = 10) -> Graph:
    config = parse_stack_config({**BASE, "gpuPools": pools})
    resources = [
        Resource("aiinfra:nodes:NodePools", "aiinfra-dev-nodes", None, {}),
        Resource("kubernetes:apps/v1:Deployment", "aiinfra-dev-serving-deployment", None, {
            "metadata": {"name": "aiinfra-serving"},
            "spec": {"template": {"spec": {"containers": [{"resources": {
                "requests": {"nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": "1"}}}]}}}}),
        Resource("kubernetes:keda.sh/v1alpha1:ScaledObject", "aiinfra-dev-scaled", None, {
            "spec": {"scaleTargetRef": {"name": "aiinfra-serving"},
                     "minReplicaCount": min_replicas, "maxReplicaCount": max_replicas}}),
    ]
    for pool in config.gpu_pools:
        node_class, node_pool = gpu_pool_objects(
            pool, node_role="role", subnet_ids=["a"], security_group_id="sg",
            zones=["us-east-1a"], tags={})
        name = f"gpu-{pool.name}"
        resources += [
            Resource("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass", f"aiinfra-dev-{name}-class",
                     "aiinfra-dev-nodes", {"metadata": {"name": name}, "spec": node_class}),
            Resource("kubernetes:karpenter.sh/v1:NodePool", f"aiinfra-dev-{name}",
                     "aiinfra-dev-nodes", {"metadata": {"name": name}, "spec": node_pool})]
    for pool, count in (reservations or {}).items():
        resources.append(Resource(
            "aws:ec2/capacityReservation:CapacityReservation", f"aiinfra-dev-{pool}-odcr",
            "aiinfra-dev-nodes", {"instanceType": "g6.2xlarge", "instanceCount": count,
                                  "tags": {"aiinfra.io/pool": pool}}))
    return Graph("dev", config, resources)


def by_key(report) -> dict:
    return {(li.name.removeprefix("aiinfra-dev-"), li.item): li for li in report.lines}


def money(value: Range) -> tuple[float, float, float]:
    return round(value.min, 2), round(value.expected, 2), round(value.max, 2)


EXPECT_5 = parse_usage({"resource_usage": {
    "aiinfra-dev-serving-deployment": {"expected_replicas": 5}}})


def test_limits_bound_each_type() -> None:
    graph = graph_of(POOLS, reservations={"resv": 2})
    (spot,) = [NodePoolShape.of(r) for r in graph.of_type("kubernetes:karpenter.sh/v1:NodePool")
               if r.name.endswith("spot")]
    # limits: 4 nodes × 1 GPU, and 4 × the largest type's 8 vCPUs
    assert spot.limits == {"nvidia.com/gpu": 4, "cpu": 32}
    assert spot.weight == 50
    assert [spot.nodes_within_limits(t) for t in spot.instance_types] == [4, 4, 4]
    tight = NodePoolShape(spot.resource, "spot", 50, spot.instance_types, ("spot",),
                          {"nvidia.com/gpu": 4, "cpu": 12})
    assert tight.nodes_within_limits("g6.xlarge") == 3     # 12 vCPU / 4
    assert tight.nodes_within_limits("g6.2xlarge") == 1    # 12 vCPU / 8


def test_nodepools_by_hand(catalogue) -> None:
    report = estimate(graph_of(POOLS, reservations={"resv": 2}), catalogue=catalogue,
                      usage=EXPECT_5)
    got = by_key(report)
    # 1 / 5 / 10 replicas × 1 GPU; reserved (weight 100) fills first, up to 4 nodes:
    # min 1 node, expected 4 (2 in the reservation, 2 beyond it at on-demand 1.0), max 4
    resv = got[("gpu-resv", "instances")]
    assert money(resv.monthly) == (0.00, 1460.00, 1460.00)
    assert resv.description == "g6.2xlarge on-demand, beyond the reservation"
    assert money(got[("resv-odcr", "instances")].monthly) == (876.00, 876.00, 876.00)
    # spot (weight 50) takes the fifth replica on its cheapest type g6.xlarge (spot 0.3, 2.5%
    # of hours at on-demand 0.8: 0.3125/h); max: 4 × g5.xlarge (0.5625/h, the dearest)
    spot = got[("gpu-spot", "instances")]
    assert money(spot.monthly) == (0.00, 228.12, 1642.50)  # 228.125
    assert spot.unit_price == Range(0.3, pytest.approx(0.3125), pytest.approx(0.5625))
    assert ("nodes: KEDA min 1 / expected 5 (usage file) / max 10 replicas × 1 GPU placed by "
            "weight resv (100) → spot (50) on g6.xlarge (1 GPU) → 0 / 1; max 4 × g5.xlarge "
            "from limits cpu=32, nvidia.com/gpu=4") in spot.note
    assert "2.5% of g6.xlarge hours assumed on on-demand at $0.8/h (Spot Advisor band <5%" \
        in spot.note
    # 100 GB gp3 per node at 0.08
    assert money(got[("gpu-spot", "storage-gp3")].monthly) == (0.00, 8.00, 32.00)
    # KEDA may ask for 10 replicas; the limits hold 4 + 4 nodes of one GPU
    assert report.notices == [
        "serving: KEDA's max 10 replicas × 1 GPU exceed what the GPU NodePools' limits hold "
        "(8 pods on their cheapest types): 2 would stay Pending"]
    assert report.notices[0] in report.warnings()
    roomy = estimate(graph_of(POOLS, reservations={"resv": 2}, max_replicas=8),
                     catalogue=catalogue)
    assert roomy.notices == []
    assert money(got[("gpu-resv", "storage-gp3")].monthly) == (8.00, 32.00, 32.00)


def test_saving_against_all_on_demand_per_pool(catalogue) -> None:
    report = estimate(graph_of(POOLS, reservations={"resv": 2}), catalogue=catalogue,
                      usage=EXPECT_5)
    pools = {p.name: p for p in report.pools}
    # reserved: reservation 876 + beyond it 0 / 1460 / 1460, against 1 / 4 / 4 nodes × 1.0
    # × 730: at min the idle reservation costs more than on-demand would
    assert money(pools["resv"].monthly) == (876.00, 2336.00, 2336.00)
    assert money(pools["resv"].on_demand_monthly) == (730.00, 2920.00, 2920.00)
    assert money(pools["resv"].saving) == (-146.00, 584.00, 584.00)
    # spot: 0 / 1 × g6.xlarge / 4 × g5.xlarge at on-demand 0.8 / 1.0
    assert money(pools["spot"].on_demand_monthly) == (0.00, 584.00, 2920.00)
    assert money(pools["spot"].saving) == (0.00, 355.88, 1277.50)


def test_the_usage_file_overrides_the_spot_fallback_share(catalogue) -> None:
    usage = parse_usage({"resource_usage": {
        "aiinfra-dev-serving-deployment": {"expected_replicas": 5},
        "aiinfra-dev-gpu-spot": {"spot_on_demand_share": 0.5}}})
    spot = by_key(estimate(graph_of(POOLS, reservations={"resv": 2}), catalogue=catalogue,
                           usage=usage))[("gpu-spot", "instances")]
    # 0.5 × 0.3 + 0.5 × 0.8 = 0.55 expected; max g5.xlarge 0.5 × 0.5 + 0.5 × 1.0 = 0.75
    assert money(spot.monthly) == (0.00, 401.50, 2190.00)
    assert "50.0% of g6.xlarge hours assumed on on-demand at $0.8/h (usage file " \
        "spot_on_demand_share)" in spot.note


def test_a_reserved_pool_without_a_reservation_pays_its_term(catalogue) -> None:
    prices = {**catalogue.prices, "ec2/reserved-3yr/g6.2xlarge": catalogue.prices[
        "ec2/reserved-1yr/g6.2xlarge"].model_copy(update={"usd": 0.45})}
    cat = catalogue.model_copy(update={"prices": prices})
    pools = [{"name": "resv", "capacity": "reserved", "reservedTerm": "3yr",
              "instanceTypes": ["g6.2xlarge"], "maxNodes": 3}]
    line = by_key(estimate(graph_of(pools, min_replicas=2), catalogue=cat))[
        ("gpu-resv", "instances")]
    # 2 / 2 / 3 nodes × 0.45 × 730
    assert money(line.monthly) == (657.00, 657.00, 985.50)
    assert line.description == "g6.2xlarge reserved (reserved 3yr no upfront)"
    assert line.price_keys == ("ec2/reserved-3yr/g6.2xlarge",)


def test_a_term_aws_does_not_offer_is_unpriced_with_the_reason() -> None:
    pools = [{"name": "h100", "capacity": "reserved", "reservedTerm": "1yr",
              "instanceTypes": ["p5.48xlarge"], "maxNodes": 1}]
    report = estimate(graph_of(pools), catalogue=load_catalogue("us-east-1"))
    (line,) = [li for li in report.unpriced if li.item == "instances"]
    assert line.note.startswith("not offered: ec2/reserved-1yr/p5.48xlarge: AWS sells no "
                                "1-year Standard Reserved Instance for p5.48xlarge")
    assert line.monthly is None


def test_the_packaged_fallback_shares_follow_the_advisor_bands() -> None:
    from infra.cost.spot import spot_price  # noqa: PLC0415

    cat = load_catalogue("us-east-1")
    # g6.xlarge: band >20% → 25% of hours at on-demand 0.8048, spot 0.5375
    assert spot_price(cat, "g6.xlarge").hourly == pytest.approx(0.75 * 0.5375 + 0.25 * 0.8048)
    # g5.4xlarge: band 10-15% → 12.5%; spot 0.9008, on-demand 1.624
    assert spot_price(cat, "g5.4xlarge").hourly == pytest.approx(
        0.875 * 0.9008 + 0.125 * 1.624)
    # g6e.xlarge: band 5-10% → 7.5%
    assert spot_price(cat, "g6e.xlarge").share == 0.075


@pytest.mark.parametrize(("version", "support", "key", "monthly"), [
    ("1.34", "STANDARD", "eks/cluster/standard", 73.00),   # standard support to 2026-12-02
    ("1.32", "EXTENDED", "eks/cluster/extended", 438.00),  # left standard 2026-03-23
    ("1.32", "STANDARD", "eks/cluster/standard", 73.00),   # EKS upgrades it instead
])
def test_control_plane_rate_on_the_catalogues_date(catalogue, version, support, key,
                                                   monthly) -> None:
    prices = {**catalogue.prices, "eks/cluster/extended": catalogue.prices[
        "eks/cluster/standard"].model_copy(update={"usd": 0.6})}
    cat = catalogue.model_copy(update={"prices": prices})  # prices of 2026-11-01
    cluster = Resource("aws:eks/cluster:Cluster", "aiinfra-dev", None, {
        "version": version, "upgradePolicy": {"supportType": support}})
    (line,) = estimate(Graph("dev", parse_stack_config({**BASE, "gpuPools": POOLS}),
                             [cluster]), catalogue=cat).lines
    assert line.price_keys == (key,)
    assert round(line.monthly.expected, 2) == monthly
