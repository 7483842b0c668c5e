"""Totals worked out by hand for a small graph, and for the real stacks' key lines."""

from __future__ import annotations

import pytest

from infra.cost import check_budget, estimate, projected_monthly_cost
from infra.cost.compute import place_replicas
from infra.cost.estimator import Range
from infra.cost.usage import parse_usage
from infra.render import Graph, Resource

from .conftest import stack_config

USAGE = parse_usage({"resource_type_default_usage": {
    "aws:ec2/natGateway:NatGateway": {"monthly_data_processed_gb": 100}}})


def lines(report) -> dict[tuple[str, str], object]:
    """Lines by (resource name, item); an Elastic IP's item is ``ipv4`` here."""
    return {(li.name, "ipv4" if li.type == "aws:ec2/eip:Eip" else li.item): li
            for li in report.lines}


def money(value: Range) -> tuple[float, float, float]:
    return round(value.min, 2), round(value.expected, 2), round(value.max, 2)


def test_each_line_by_hand(fixture_graph, catalogue) -> None:
    report = estimate(fixture_graph, catalogue=catalogue, usage=USAGE)
    got = {key: money(li.monthly) for key, li in lines(report).items()
           if li.status == "priced"}
    assert got == {
        ("aiinfra-dev-nat-a", "ipv4"): (3.65, 3.65, 3.65),         # 730 h × 0.005
        ("aiinfra-dev-nat-a", "hours"): (32.85, 32.85, 32.85),     # 730 h × 0.045
        ("aiinfra-dev-nat-a", "data"): (4.50, 4.50, 4.50),         # 100 GB × 0.045
        ("aiinfra-dev-ecr-api", "hours"): (14.60, 14.60, 14.60),   # 2 AZ × 730 h × 0.01
        ("aiinfra-dev", "hours"): (73.00, 73.00, 73.00),           # 730 h × 0.10
        ("aiinfra-dev-secrets", "key"): (1.00, 1.00, 1.00),
        # m7i.large at 0.1: 2 / 2 / 3 nodes × 730 h; 50 GB gp3 per node at 0.08
        ("aiinfra-dev-system", "instances"): (146.00, 146.00, 219.00),
        ("aiinfra-dev-system", "storage-gp3"): (8.00, 8.00, 12.00),
        # spot 0.3 / 0.4 / 0.5, on-demand 0.8 / 1.0 / 1.0, fallback 2.5% / 25% / 12.5%:
        # per type 0.3125 / 0.55 / 0.5625 an hour; min 0 nodes, expected 2 × the mean 0.475,
        # max 4 × the dearest 0.5625
        ("aiinfra-dev-gpu-spot-spot", "instances"): (0.00, 693.50, 1642.50),
        ("aiinfra-dev-gpu-spot-spot", "storage-gp3"): (0.00, 16.00, 32.00),
        # reserved pool: the 2-node reservation at the 1yr rate 0.6, all month, in every
        # column; the node group adds only nodes beyond it (0 / 1 / 2) at on-demand 1.0
        ("aiinfra-dev-resv-odcr", "instances"): (876.00, 876.00, 876.00),
        ("aiinfra-dev-gpu-resv-reserved", "instances"): (0.00, 730.00, 1460.00),
        ("aiinfra-dev-gpu-resv-reserved", "storage-gp3"): (16.00, 24.00, 32.00),
        # Multi-AZ at its listed 0.49/h (not 2 × a Single-AZ price): 730 × 0.49
        ("aiinfra-dev-postgres", "instances"): (357.70, 357.70, 357.70),
        ("aiinfra-dev-postgres", "storage"): (23.00, 23.00, 23.00),
        ("aiinfra-dev-redis", "nodes"): (319.74, 319.74, 319.74),  # 2 × 0.219 × 730
    }


def test_totals_by_hand(fixture_graph, catalogue) -> None:
    report = estimate(fixture_graph, catalogue=catalogue, usage=USAGE)
    # network 3.65 + 32.85 + 4.50 + 14.60 = 55.60; cluster 73 + 1; database 357.70 + 23;
    # cache 319.74; nodes: system 154 / 154 / 231, spot 0 / 709.50 / 1674.50,
    # reserved 892 / 1630 / 2368 (reservation 876 + beyond it + volumes)
    assert money(report.total) == (1876.04, 3323.54, 5103.54)
    totals = report.component_totals()
    assert money(totals["network"]) == (55.60, 55.60, 55.60)
    assert money(totals["cluster"]) == (74.00, 74.00, 74.00)
    assert money(totals["database"]) == (380.70, 380.70, 380.70)
    assert money(totals["nodes"]) == (1046.00, 2493.50, 4273.50)


def test_unpriced_and_usage_are_listed_never_zero(fixture_graph, catalogue) -> None:
    report = estimate(fixture_graph, catalogue=catalogue, usage=USAGE)
    assert [(li.name, li.note) for li in report.unpriced] == [
        ("aiinfra-dev-shared", "no price model for this resource type")]
    assert report.unpriced[0].monthly is None
    assert [(li.name, li.item) for li in report.usage_missing] == [
        ("aiinfra-dev-models", "storage")]
    assert report.usage_missing[0].monthly is None
    listed = {li.type for li in report.lines}
    assert "aws:iam/role:Role" not in listed
    assert "aws:ec2/vpc:Vpc" not in listed
    assert not any(li.name == "aiinfra-dev-s3" for li in report.lines)  # gateway: free
    assert any("unpriced: aws:fsx" in w for w in report.warnings())


def test_missing_price_makes_the_line_unpriced(fixture_graph, catalogue) -> None:
    prices = dict(catalogue.prices)
    del prices["ec2/spot/g5.xlarge"]
    smaller = catalogue.model_copy(update={"prices": prices})
    report = estimate(fixture_graph, catalogue=smaller)
    spot = lines(report)[("aiinfra-dev-gpu-spot-spot", "instances")]
    assert spot.status == "unpriced"
    assert "ec2/spot/g5.xlarge" in spot.note
    assert spot.monthly is None


def test_pools_carry_node_prices(fixture_graph, catalogue) -> None:
    pools = {p.name: p for p in estimate(fixture_graph, catalogue=catalogue).pools}
    assert set(pools) == {"spot", "resv"}
    assert pools["spot"].node_hourly == Range(0.3, pytest.approx(0.475), 0.5625)
    assert pools["spot"].nodes == Range(0, 2, 4)
    assert pools["resv"].node_hourly == Range.of(0.6)


def test_projected_monthly_cost_and_budget(fixture_graph, catalogue) -> None:
    # without usage the 100 GB through NAT (4.50) is not counted
    assert projected_monthly_cost(fixture_graph, catalogue=catalogue) == pytest.approx(3319.04)
    result = check_budget(fixture_graph, usage=USAGE, catalogue=catalogue)
    assert result.over
    assert result.budget_usd == 2000
    assert "exceeds the budget of $2,000.00" in result.message
    roomy = Graph("dev", stack_config(budget=5000), fixture_graph.resources)
    assert not check_budget(roomy, catalogue=catalogue).over
    unset = Graph("dev", stack_config(budget=None), fixture_graph.resources)
    assert not check_budget(unset, catalogue=catalogue).over
    assert estimate(unset, catalogue=catalogue).budget_usd is None


def test_reserved_reservation_without_reserved_pool_is_on_demand(catalogue) -> None:
    graph = Graph("dev", stack_config(), [Resource(
        "aws:ec2/capacityReservation:CapacityReservation", "aiinfra-dev-spare", None,
        {"instanceType": "g6.2xlarge", "instanceCount": 1})])
    (line,) = estimate(graph, catalogue=catalogue).lines
    assert money(line.monthly) == (730.00, 730.00, 730.00)  # on-demand 1.0 × 730 h


def test_kubernetes_volumes_and_load_balancers(catalogue) -> None:
    prices = {**catalogue.prices, "elb/network/hour": catalogue.prices["vpc/nat-gateway/hour"]}
    cat = catalogue.model_copy(update={"prices": prices})
    graph = Graph("dev", stack_config(), [
        Resource("kubernetes:helm.sh/v3:Release", "aiinfra-dev-prom", None, {
            "chart": "kube-prometheus-stack", "values": {"prometheus": {"prometheusSpec": {
                "replicas": 2, "storageSpec": {"volumeClaimTemplate": {"spec": {
                    "storageClassName": "gp3",
                    "resources": {"requests": {"storage": "50Gi"}}}}}}}}}),
        Resource("kubernetes:core/v1:PersistentVolumeClaim", "aiinfra-dev-pvc", None, {
            "spec": {"storageClassName": "gp3", "resources": {"requests": {"storage": "10Gi"}}}}),
        Resource("kubernetes:core/v1:Service", "aiinfra-dev-lb", None, {
            "metadata": {"annotations": {
                "service.beta.kubernetes.io/aws-load-balancer-type": "external"}},
            "spec": {"type": "LoadBalancer"}}),
        Resource("kubernetes:core/v1:Service", "aiinfra-dev-clb", None, {
            "spec": {"type": "LoadBalancer"}}),
        Resource("kubernetes:core/v1:Service", "aiinfra-dev-internal", None, {
            "spec": {"type": "ClusterIP"}}),
    ])
    report = estimate(graph, catalogue=cat)
    got = {li.name: (li.status, li.monthly.expected if li.monthly else None)
           for li in report.lines}
    assert got["aiinfra-dev-prom"] == ("priced", pytest.approx(8.0))  # 2 × 50 GB × 0.08
    assert got["aiinfra-dev-pvc"] == ("priced", pytest.approx(0.8))
    assert got["aiinfra-dev-lb"] == ("priced", pytest.approx(32.85))
    assert got["aiinfra-dev-clb"] == ("unpriced", None)
    assert "aiinfra-dev-internal" not in got


# The real stacks with the packaged catalogue -----------------------------------------------

def test_prod_lines_by_hand(graphs) -> None:
    report = estimate(graphs["prod"])
    by = lines(report)
    assert money(by[("aiinfra-prod", "hours")].monthly) == (73.00, 73.00, 73.00)
    # 3 × m7i.xlarge at 0.2016 (min = desired = 3, max 6)
    assert money(by[("aiinfra-prod-system", "instances")].monthly) == (441.50, 441.50, 883.01)
    # GPU NodePools, no usage file: the 4 minimum replicas (1 GPU each) fill the reserved
    # pool first (weight 100), all 4 inside its 4-node reservation; its 5th node (max, from
    # limits nvidia.com/gpu=5) is on-demand at 0.9776
    assert money(by[("aiinfra-prod-gpu-l4-reserved", "instances")].monthly) == (
        0.00, 0.00, 713.65)
    # spot: nothing placed there at min or expected; max 20 nodes (limits gpu=20, cpu=320)
    # of the dearest allowed type, g5.2xlarge: spot 1.0236 with 17.5% of hours (band
    # 15-20%) on on-demand 1.212: 0.825 × 1.0236 + 0.175 × 1.212 = 1.05657 × 730 × 20
    spot = by[("aiinfra-prod-gpu-l4-spot", "instances")]
    assert money(spot.monthly) == (0.00, 0.00, 15425.92)
    assert "max 20 × g5.2xlarge from limits cpu=320, nvidia.com/gpu=20" in spot.note
    # burst: max 8 nodes; g6.4xlarge is allowed and dearer: 8 × 1.3232 × 730
    assert money(by[("aiinfra-prod-gpu-l4-burst", "instances")].monthly) == (
        0.00, 0.00, 7727.49)
    assert money(by[("aiinfra-prod-redis", "nodes")].monthly) == (479.61, 479.61, 479.61)
    assert money(by[("aiinfra-prod-postgres", "storage")].monthly) == (46.00, 46.00, 46.00)
    for name in ("aiinfra-prod-ecr-api", "aiinfra-prod-ecr-dkr", "aiinfra-prod-sts"):
        assert money(by[(name, "hours")].monthly) == (21.90, 21.90, 21.90)
    # the reservation: 4 × g6.2xlarge all month at the 1-year no-upfront 0.63642
    assert money(by[("aiinfra-prod-l4-reserved-odcr", "instances")].monthly) == (
        1858.35, 1858.35, 1858.35)
    # db.r7g.xlarge Multi-AZ at its listed 0.956 (the feed's Single-AZ is 0.478)
    assert money(by[("aiinfra-prod-postgres", "instances")].monthly) == (697.88, 697.88, 697.88)
    assert report.unpriced == []
    # KEDA's max 40 replicas against the pools' limits: 5 + 20 + 8 one-GPU nodes
    assert report.notices == [
        "serving: KEDA's max 40 replicas × 1 GPU exceed what the GPU NodePools' limits hold "
        "(33 pods on their cheapest types): 7 would stay Pending"]


def test_prod_totals_by_hand(graphs) -> None:
    report = estimate(graphs["prod"])  # no usage: usage-based charges are left out
    totals = report.component_totals()
    # network: 3 public IPv4 (3.65), 3 NAT gateways (32.85), 3 interface endpoints × 3 AZ
    assert money(totals["network"]) == (175.20, 175.20, 175.20)
    # nodes: system 3/3/6 × 0.2016 × 730 + 50 GB each; reserved pool: the reservation
    # 4 × 0.63642 × 730 all month, nodes 4/4/5 (the 5th on-demand at 0.9776), 100 GB each;
    # spot 0/0/20 and burst 0/0/8 (see above), 100 GB each
    system = Range(441.504 + 12, 441.504 + 12, 883.008 + 24)
    reserved = Range(1858.3464 + 32, 1858.3464 + 32, 1858.3464 + 713.648 + 40)
    spot = Range(0, 0, 15425.922 + 160)
    burst = Range(0, 0, 7727.488 + 64)
    assert money(totals["nodes"]) == money(system + reserved + spot + burst)
    assert money(report.total) == money(sum((li.monthly for li in report.priced), Range.of(0)))
    assert projected_monthly_cost(graphs["prod"]) == pytest.approx(report.total.expected)


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_stack_prices_its_cluster_and_nodes(graphs, stack: str) -> None:
    report = estimate(graphs[stack])
    priced_types = {li.type for li in report.priced}
    assert {"aws:eks/cluster:Cluster", "aws:eks/nodeGroup:NodeGroup",
            "kubernetes:karpenter.sh/v1:NodePool", "aws:ec2/natGateway:NatGateway"
            } <= priced_types
    assert report.total.min <= report.total.expected <= report.total.max
    for line in report.priced:
        if line.monthly.expected == 0:
            assert line.quantity.expected == 0, line  # $0 only for zero nodes


def test_efs_storage_and_elastic_throughput_by_usage_claims_not_double_counted(
        catalogue) -> None:
    graph = Graph("dev", stack_config(), [
        Resource("aws:efs/fileSystem:FileSystem", "aiinfra-dev-engines", None,
                 {"throughputMode": "elastic"}),
        Resource("aws:efs/fileSystem:FileSystem", "aiinfra-dev-fixed", None,
                 {"throughputMode": "provisioned"}),
        Resource("aws:efs/mountTarget:MountTarget", "aiinfra-dev-engines-0", None, {}),
        Resource("kubernetes:storage.k8s.io/v1:StorageClass", "aiinfra-dev-engines", None,
                 {"metadata": {"name": "engines"}, "provisioner": "efs.csi.aws.com"}),
        Resource("kubernetes:core/v1:PersistentVolumeClaim", "aiinfra-dev-engines", None,
                 {"spec": {"storageClassName": "engines",
                           "resources": {"requests": {"storage": "20Gi"}}}}),
    ])
    usage = parse_usage({"resource_usage": {"aiinfra-dev-engines": {
        "storage_gb": 20, "monthly_read_gb": 150, "monthly_write_gb": 12}}})
    report = estimate(graph, catalogue=catalogue, usage=usage)
    got = {(li.name.removeprefix("aiinfra-dev-"), li.item): li for li in report.lines}
    assert set(got) == {("engines", "storage"), ("engines", "throughput-read"),
                        ("engines", "throughput-write"), ("fixed", "storage"),
                        ("fixed", "throughput")}
    assert got[("engines", "storage")].monthly.expected == pytest.approx(6.0)  # 20 × 0.30
    assert got[("engines", "throughput-read")].monthly.expected == pytest.approx(4.5)  # 150 × 0.03
    assert got[("engines", "throughput-write")].monthly.expected == pytest.approx(0.72)  # 12 × 0.06
    assert got[("fixed", "storage")].status == "usage"  # no storage_gb for this one
    assert got[("fixed", "throughput")].status == "unpriced"


def test_replicas_fill_reserved_then_spot_then_on_demand(graphs) -> None:
    config = graphs["prod"].config  # reserved ≤ 5, spot ≤ 20, burst ≤ 8 nodes; 1 GPU a pod
    assert place_replicas(config, 0) == {"l4-reserved": 0, "l4-spot": 0, "l4-burst": 0}
    assert place_replicas(config, 4) == {"l4-reserved": 4, "l4-spot": 0, "l4-burst": 0}
    assert place_replicas(config, 8) == {"l4-reserved": 5, "l4-spot": 3, "l4-burst": 0}
    assert place_replicas(config, 30) == {"l4-reserved": 5, "l4-spot": 20, "l4-burst": 5}
    assert place_replicas(config, 100) == {"l4-reserved": 5, "l4-spot": 20, "l4-burst": 8}


def test_expected_nodes_follow_the_usage_files_replicas(graphs) -> None:
    usage = parse_usage({"resource_usage": {
        "aiinfra-prod-serving-deployment": {"expected_replicas": 8}}})
    by = lines(estimate(graphs["prod"], usage=usage))
    spot = by[("aiinfra-prod-gpu-l4-spot", "instances")]
    # 8 replicas: 5 on the reserved pool (4 reserved + 1 on-demand), 3 on spot on its
    # cheapest type g6.xlarge: spot 0.5375, 25% of hours (band >20%) on on-demand 0.8048
    assert money(spot.monthly) == (0.00, round(3 * 730 * (0.75 * 0.5375 + 0.25 * 0.8048), 2),
                                   15425.92)
    assert "KEDA min 4 / expected 8 (usage file) / max 40 replicas × 1 GPU" in spot.note
    assert "on g6.xlarge (1 GPU) → 0 / 3" in spot.note
    reserved = by[("aiinfra-prod-gpu-l4-reserved", "instances")]
    assert money(reserved.monthly) == (0.00, 713.65, 713.65)
