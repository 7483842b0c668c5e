"""The packaged catalogue: its schema (every price dated and sourced) and its figures."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import yaml

from infra.catalog import catalog
from infra.cost.catalogue import (
    CatalogueError,
    catalogue_path,
    known_regions,
    load_catalogue,
    parse_catalogue,
    read_catalogue,
    write_catalogue,
)

REF = re.compile(r"^(https://\S+|github\.com/[\w.-]+/[\w.-]+@[0-9a-f]{40}:\S+|EC2 \S.*)")


@pytest.fixture(scope="module")
def packaged():
    return load_catalogue("us-east-1")


def test_every_price_is_dated_and_sourced(packaged) -> None:
    raw = yaml.safe_load(catalogue_path("us-east-1").read_text())
    assert raw["prices"], "empty catalogue"
    for key, entry in raw["prices"].items():
        assert set(entry) >= {"usd", "unit", "date", "source"}, key
        assert entry["source"] in raw["sources"], key
        assert entry["usd"] > 0, key
        date = dt.date.fromisoformat(str(entry["date"]))
        # the oldest source is AWS's RDS on-demand feed of 2024-09-28 (storage)
        assert dt.date(2024, 9, 1) <= date <= dt.date.today(), key
    for table in ("gaps", "spot_advisor"):  # the other tables are dated and sourced alike
        assert raw[table], table
        for key, entry in raw[table].items():
            assert entry["source"] in raw["sources"], key
            assert dt.date(2024, 9, 1) <= dt.date.fromisoformat(str(entry["date"])) <= \
                dt.date.today(), key
    for name, source in packaged.sources.items():
        assert REF.match(source.ref), f"{name}: {source.ref}"
        assert len(source.description) > 20, name
    used = {e.source for e in (*packaged.prices.values(), *packaged.gaps.values(),
                               *packaged.spot_advisor.values())}
    assert used == set(packaged.sources)


def test_required_families_are_priced(packaged) -> None:
    for family in ("g4dn", "g5", "g6", "g6e", "p4d", "p5", "m6i", "m7i", "c6i"):
        assert any(k.startswith(f"ec2/on-demand/{family}.") for k in packaged.prices), family
    for instance_type in catalog().ec2:  # every type the stacks can use has an on-demand price
        assert packaged.usd(f"ec2/on-demand/{instance_type}") is not None, instance_type
    for gpu_type, spec in catalog().ec2.items():
        if spec.gpus:
            assert packaged.usd(f"ec2/spot/{gpu_type}") is not None, gpu_type
    assert {"eks/cluster/standard", "vpc/nat-gateway/hour", "vpc/nat-gateway/data",
            "ebs/storage/gp3", "s3/storage/standard", "vpc/interface-endpoint/hour",
            "vpc/public-ipv4/hour", "rds/storage/gp3", "rds/storage/gp3-multi-az",
            "elb/application/hour"} <= set(packaged.prices)


@pytest.mark.parametrize(("instance_type", "usd"), [
    ("g4dn.xlarge", 0.526), ("g5.xlarge", 1.006), ("g5.12xlarge", 5.672),
    ("g6.xlarge", 0.8048), ("g6.2xlarge", 0.9776), ("g6e.xlarge", 1.861),
    ("g6e.2xlarge", 2.24208), ("p4d.24xlarge", 21.957642), ("p5.48xlarge", 55.04),
    ("m6i.large", 0.096), ("m7i.xlarge", 0.2016), ("c6i.2xlarge", 0.34),
])
def test_on_demand_prices_match_aws_to_the_cent_per_hour(packaged, instance_type, usd) -> None:
    price = packaged.get(f"ec2/on-demand/{instance_type}")
    assert price.usd == usd
    assert price.unit == "hour"
    assert price.date == dt.date(2026, 1, 19)
    assert "karpenter-provider-aws@031e72b6" in packaged.sources[price.source].ref


def test_service_prices(packaged) -> None:
    assert packaged.usd("eks/cluster/standard") == 0.10
    assert packaged.usd("vpc/nat-gateway/hour") == 0.045
    assert packaged.usd("vpc/nat-gateway/data") == 0.045
    # RDS gp3 storage, each deployment as AWS lists it (the feed of 2024-09-28)
    assert packaged.usd("rds/storage/gp3") == 0.115
    assert packaged.usd("rds/storage/gp3-multi-az") == 0.23
    assert packaged.get("rds/storage/gp3").source == "ec2shop-rds-ondemand"
    # Redis OSS = Valkey / 0.8 for node-based ElastiCache
    for node in ("cache.r7g.large", "cache.r7g.xlarge", "cache.r7g.2xlarge"):
        assert packaged.usd(f"elasticache/redis/{node}") == pytest.approx(
            packaged.usd(f"elasticache/valkey/{node}") / 0.8)
    assert packaged.cite("eks/cluster/standard").startswith("2026-11-27 https://aws.amazon.com")
    assert packaged.cite("ec2/reserved-3yr/p5.48xlarge") is None  # unknown, not 0


# RDS for PostgreSQL on-demand, us-east-1, AWS's feed of 2025-04-04: Multi-AZ as listed
@pytest.mark.parametrize(("instance_class", "single", "multi"), [
    ("db.t4g.medium", 0.065, 0.129),   # not 2 × 0.065
    ("db.m7g.large", 0.168, 0.337),    # not 2 × 0.168
    ("db.r6g.xlarge", 0.45, 0.899),
    ("db.r7g.xlarge", 0.478, 0.956),
    ("db.r7g.4xlarge", 1.913, 3.825),
])
def test_rds_postgres_single_and_multi_az_as_listed(packaged, instance_class, single,
                                                    multi) -> None:
    assert packaged.usd(f"rds/postgres/{instance_class}") == single
    assert packaged.usd(f"rds/postgres-multi-az/{instance_class}") == multi
    assert packaged.get(f"rds/postgres-multi-az/{instance_class}").date == dt.date(2025, 4, 4)


def test_every_rds_class_the_stacks_can_use_is_priced(packaged) -> None:
    for instance_class in catalog().rds:
        for kind in ("postgres", "postgres-multi-az"):
            assert packaged.usd(f"rds/{kind}/{instance_class}") is not None, instance_class


@pytest.mark.parametrize(("instance_type", "one", "three"), [
    ("g6.2xlarge", 0.63642, 0.44872), ("g4dn.xlarge", 0.331, 0.227),
    ("g5.48xlarge", 10.26144, 7.03642), ("m7i.xlarge", 0.13336, 0.09145),
    ("g6e.12xlarge", 6.61036, 4.53282)])
def test_reserved_no_upfront_rates(packaged, instance_type, one, three) -> None:
    assert packaged.usd(f"ec2/reserved-1yr/{instance_type}") == one
    assert packaged.usd(f"ec2/reserved-3yr/{instance_type}") == three


def test_every_type_has_both_terms_or_a_stated_gap(packaged) -> None:
    for instance_type in catalog().ec2:
        for term in ("1yr", "3yr"):
            key = f"ec2/reserved-{term}/{instance_type}"
            assert (key in packaged.prices) != (key in packaged.gaps), key
    assert packaged.usd("ec2/reserved-1yr/p4d.24xlarge") == 13.921094  # after the 2025 cut
    assert packaged.gaps["ec2/reserved-1yr/p5.48xlarge"].status == "not-offered"
    for key in ("ec2/reserved-3yr/p4d.24xlarge", "ec2/reserved-3yr/p5.48xlarge"):
        assert packaged.gaps[key].status == "no-current-price"
    assert packaged.why_missing("ec2/reserved-1yr/p5.48xlarge").startswith(
        "not offered: ec2/reserved-1yr/p5.48xlarge: AWS sells no 1-year")


def test_every_type_has_a_spot_advisor_band(packaged) -> None:
    for instance_type in catalog().ec2:
        assert instance_type in packaged.spot_advisor, instance_type
    assert packaged.spot_advisor["g6.xlarge"].band == ">20%"
    assert packaged.spot_advisor["g5.4xlarge"].band == "10-15%"
    assert packaged.spot_advisor["g6e.xlarge"].savings_percent == 58


def test_a_key_cannot_be_both_priced_and_a_gap() -> None:
    source = {"s": {"ref": "https://example.invalid/x", "description": "a test source"}}
    entry = {"usd": 0.1, "unit": "hour", "date": "2026-01-01", "source": "s"}
    gap = {"status": "not-offered", "reason": "a reason long enough to read",
           "date": "2026-01-01", "source": "s"}
    with pytest.raises(CatalogueError, match="both priced and listed as gaps"):
        parse_catalogue({"region": "r", "sources": source, "prices": {"ec2/x/y": entry},
                         "gaps": {"ec2/x/y": gap}})
    with pytest.raises(CatalogueError, match="unknown sources"):
        parse_catalogue({"region": "r", "sources": source, "prices": {},
                         "gaps": {"ec2/x/z": {**gap, "source": "nowhere"}}})


@pytest.mark.parametrize(("change", "message"), [
    ({"usd": 0}, "greater than 0"),
    ({"date": "2026-1-5"}, "YYYY-MM-DD"),
    ({"source": "nowhere"}, "unknown sources"),
    ({"unit": "fortnight"}, "unit"),
])
def test_invalid_entries_are_rejected(change, message) -> None:
    entry = {"usd": 0.1, "unit": "hour", "date": "2026-01-01", "source": "s", **change}
    with pytest.raises(CatalogueError, match=message):
        parse_catalogue({"region": "us-east-1", "prices": {"ec2/on-demand/x.large": entry},
                         "sources": {"s": {"ref": "https://example.invalid/x",
                                           "description": "a test source"}}})


def test_entry_without_date_or_source_is_rejected() -> None:
    with pytest.raises(CatalogueError, match="date"):
        parse_catalogue({"region": "r", "sources": {}, "prices": {
            "ec2/on-demand/x": {"usd": 1, "unit": "hour", "source": "s"}}})
    with pytest.raises(CatalogueError, match="source"):
        parse_catalogue({"region": "r", "sources": {}, "prices": {
            "ec2/on-demand/x": {"usd": 1, "unit": "hour", "date": "2026-01-01"}}})


def test_write_and_read_back(packaged, tmp_path) -> None:
    path = tmp_path / "prices-us-east-1.yaml"
    write_catalogue(packaged, path, "# test header")
    assert path.read_text().startswith("# test header\n")
    assert read_catalogue(path) == packaged
    assert known_regions(tmp_path) == ["us-east-1"]
    with pytest.raises(CatalogueError, match="known regions: us-east-1"):
        read_catalogue(tmp_path / "prices-eu-west-1.yaml")
