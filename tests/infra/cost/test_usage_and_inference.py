"""Usage files and cost per 1M inferences."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.cost import estimate
from infra.cost.catalogue import load_catalogue
from infra.cost.inference import (
    ThroughputError,
    parse_throughput,
    throughput_from_bench,
    unit_costs,
)
from infra.cost.usage import UsageError, default_usage_path, load_usage, parse_usage

ROOT = Path(__file__).resolve().parents[3]


def test_resource_usage_overrides_type_default() -> None:
    usage = parse_usage({
        "resource_type_default_usage": {"aws:s3/bucket:Bucket": {"storage_gb": 10}},
        "resource_usage": {"aiinfra-dev-models": {"storage_gb": 250}}})
    assert usage.value("aws:s3/bucket:Bucket", "aiinfra-dev-models", "storage_gb") == 250
    assert usage.value("aws:s3/bucket:Bucket", "other", "storage_gb") == 10
    assert usage.value("aws:s3/bucket:Bucket", "other", "monthly_requests") is None


def test_usage_priced_by_hand(fixture_graph, catalogue) -> None:
    usage = parse_usage({"resource_usage": {"aiinfra-dev-models": {"storage_gb": 250}}})
    report = estimate(fixture_graph, catalogue=catalogue, usage=usage)
    (bucket,) = [li for li in report.lines if li.name == "aiinfra-dev-models"]
    assert bucket.status == "priced"
    assert bucket.monthly.expected == pytest.approx(5.75)  # 250 GB × 0.023


@pytest.mark.parametrize(("data", "message"), [
    ({"resource_usage": {"x": {"storage_tb": 1}}}, "unknown usage key"),
    ({"resource_usage": {"x": {"storage_gb": -1}}}, "must be ≥ 0"),
    ({"resources": {}}, "Extra inputs"),
])
def test_bad_usage_files(data, message) -> None:
    with pytest.raises(UsageError, match=message):
        parse_usage(data)


def test_packaged_usage_files_load() -> None:
    for stack in ("dev", "staging", "prod"):
        usage = load_usage(stack)
        assert usage is not None
        assert usage.source == str(default_usage_path(stack))
    assert load_usage("no-such-stack") is None
    with pytest.raises(UsageError, match="no usage file"):
        load_usage("dev", Path("/nonexistent/usage.yaml"))


def test_throughput_from_bench_results(tmp_path) -> None:
    compare = ROOT / "docs" / "bench" / "mlp-json-c32.json"
    expected = json.loads(compare.read_text())["aiinfra"]["inferences_per_s"]
    assert throughput_from_bench(compare) == expected
    single = tmp_path / "run.json"
    single.write_text(json.dumps({"rps": 50.0, "inferences_per_s": 400.0}))
    assert throughput_from_bench(single) == 400.0
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    with pytest.raises(ThroughputError, match="inferences_per_s"):
        throughput_from_bench(empty)


def test_parse_throughput() -> None:
    assert parse_throughput(["120"]) == 120.0
    assert parse_throughput(["a=1", "b=2.5"]) == {"a": 1.0, "b": 2.5}
    assert parse_throughput(["100", "b=2"]) == {"b": 2.0, "*": 100.0}
    with pytest.raises(ThroughputError):
        parse_throughput(["fast"])
    with pytest.raises(ThroughputError):
        parse_throughput(["0"])


def test_cost_per_million_by_hand(fixture_graph, catalogue) -> None:
    report = estimate(fixture_graph, catalogue=catalogue)
    costs = unit_costs(report, 100.0, "stated")
    pools = {p.name: p for p in costs.pools}
    # one node serves 100/s = 360,000 inferences an hour
    # spot at its expected 0.475/h (on-demand fallback included)
    assert pools["spot"].per_million == pytest.approx(0.475 / 360_000 * 1e6)  # $1.3194
    assert pools["resv"].per_million == pytest.approx(0.6 / 360_000 * 1e6)   # $1.6667
    # blend by expected nodes: (2 × 0.475 + 3 × 0.6) / (5 × 360,000) × 1e6
    assert costs.blended == pytest.approx(2.75 / 1_800_000 * 1e6)           # $1.5278
    # whole stack, expected, over the inferences 5 busy nodes serve in 730 h
    assert costs.all_in == pytest.approx(report.total.expected / (5 * 360_000 * 730) * 1e6)
    per_pool = unit_costs(report, {"spot": 200.0, "resv": 100.0}, "stated")
    assert per_pool.blended == pytest.approx(2.75 / ((2 * 200 + 3 * 100) * 3600) * 1e6)


def test_unpriced_pool_has_no_blend(graphs) -> None:
    catalogue = load_catalogue("us-east-1")
    prices = {k: v for k, v in catalogue.prices.items() if k != "ec2/reserved-1yr/g6.2xlarge"}
    report = estimate(graphs["prod"], catalogue=catalogue.model_copy(update={"prices": prices}))
    costs = unit_costs(report, 1000.0, "stated")
    by_name = {p.name: p for p in costs.pools}
    assert by_name["l4-reserved"].per_million is None  # its reservation is unpriced here
    # spot: g6.xlarge 0.5375 with 25% of hours at on-demand 0.8048
    assert by_name["l4-spot"].per_million == pytest.approx(0.604325 / 3.6)
    assert costs.blended is None
    assert any("needs every running pool priced" in note for note in costs.notes)


def test_reserved_pool_node_hour_is_what_its_nodes_cost(graphs) -> None:
    pools = {p.name: p for p in estimate(graphs["prod"], usage=load_usage("prod")).pools}
    # 5 nodes expected: the reservation (4 × 0.63642) and one on-demand (0.9776), per node
    assert pools["l4-reserved"].node_hourly.expected == pytest.approx(
        (4 * 0.63642 + 0.9776) / 5)
    # 4 nodes at min: all inside the reservation
    assert pools["l4-reserved"].node_hourly.min == pytest.approx(0.63642)
