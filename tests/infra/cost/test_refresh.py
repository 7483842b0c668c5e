"""``prices refresh`` against botocore's Stubber: never AWS itself."""

from __future__ import annotations

import datetime as dt
import json

import botocore.session
import pytest
from botocore.stub import Stubber

from infra.cost.catalogue import load_catalogue, read_catalogue
from infra.cost.cli import run_prices_refresh
from infra.cost.refresh import refresh_catalogue

TODAY = dt.date(2026, 12, 1)


def client(service: str):
    return botocore.session.get_session().create_client(
        service, region_name="us-east-1", aws_access_key_id="test",
        aws_secret_access_key="test")


def hourly(usd: str) -> dict:
    return {"priceDimensions": {"D": {"unit": "Hrs", "pricePerUnit": {"USD": usd}}}}


def reserved(length: str, option: str, usd: str, offering: str = "standard") -> dict:
    return {"termAttributes": {"LeaseContractLength": length, "PurchaseOption": option,
                               "OfferingClass": offering}, **hourly(usd)}


def product(attributes: dict, on_demand: str, reserved_terms: dict | None = None) -> str:
    return json.dumps({"product": {"attributes": attributes},
                       "terms": {"OnDemand": {"T": hourly(on_demand)},
                                 "Reserved": reserved_terms or {}}})


def request(service: str, **filters: str) -> dict:
    return {"ServiceCode": service, "FormatVersion": "aws_v1",
            "Filters": [{"Type": "TERM_MATCH", "Field": k, "Value": v}
                        for k, v in filters.items()]}


EC2_FILTERS = {"regionCode": "us-east-1", "instanceType": "g6.xlarge",
               "operatingSystem": "Linux", "tenancy": "Shared", "preInstalledSw": "NA",
               "capacitystatus": "Used", "licenseModel": "No License required"}


@pytest.fixture
def stubbed():
    pricing, ec2 = client("pricing"), client("ec2")
    with Stubber(pricing) as price_stub, Stubber(ec2) as ec2_stub:
        ec2_request = request("AmazonEC2", **EC2_FILTERS)
        price_stub.add_response("get_products", {"PriceList": [product(
            {"instanceType": "g6.xlarge"}, "0.8048000000", {
                "A": reserved("1yr", "No Upfront", "0.5070000000"),
                "B": reserved("1yr", "All Upfront", "0.0000000000"),
                "C": reserved("3yr", "No Upfront", "0.3490000000"),
                "D": reserved("1yr", "No Upfront", "0.6000000000", offering="convertible"),
            })], "NextToken": "page-2", "FormatVersion": "aws_v1"}, ec2_request)
        price_stub.add_response("get_products", {"PriceList": [], "FormatVersion": "aws_v1"},
                                {**ec2_request, "NextToken": "page-2"})
        price_stub.add_response("get_products", {"PriceList": [product(
            {"instanceType": "db.r7g.large"}, "0.2500000000")]}, request(
            "AmazonRDS", regionCode="us-east-1", instanceType="db.r7g.large",
            databaseEngine="PostgreSQL", deploymentOption="Single-AZ"))
        price_stub.add_response("get_products", {"PriceList": [
            product({"usagetype": "USE1-SyncDurability-NodeUsage:cache.r7g.large"}, "0.035"),
            product({"usagetype": "NodeUsage:cache.r7g.large"}, "0.2190000000"),
        ]}, request("AmazonElastiCache", regionCode="us-east-1", instanceType="cache.r7g.large",
                    cacheEngine="Redis"))
        price_stub.add_response("get_products", {"PriceList": [
            product({"usagetype": "NodeUsage:cache.r7g.large"}, "0.1752000000")]},
            request("AmazonElastiCache", regionCode="us-east-1", instanceType="cache.r7g.large",
                    cacheEngine="Valkey"))
        end = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
        spot_request = {"InstanceTypes": ["g6.xlarge"], "ProductDescriptions": ["Linux/UNIX"],
                        "StartTime": end - dt.timedelta(days=7), "EndTime": end}
        point = {"InstanceType": "g6.xlarge", "ProductDescription": "Linux/UNIX"}
        ec2_stub.add_response("describe_spot_price_history", {"SpotPriceHistory": [
            {**point, "SpotPrice": "0.5", "AvailabilityZone": "us-east-1a"},
            {**point, "SpotPrice": "0.6", "AvailabilityZone": "us-east-1b"}],
            "NextToken": "more"}, spot_request)
        ec2_stub.add_response("describe_spot_price_history", {"SpotPriceHistory": [
            {**point, "SpotPrice": "0.7", "AvailabilityZone": "us-east-1c"}]},
            {**spot_request, "NextToken": "more"})
        yield pricing, ec2
        price_stub.assert_no_pending_responses()
        ec2_stub.assert_no_pending_responses()


def test_refresh_replaces_instance_prices_and_keeps_the_rest(stubbed) -> None:
    pricing, ec2 = stubbed
    base = load_catalogue("us-east-1")
    fresh = refresh_catalogue("us-east-1", base=base, pricing=pricing, ec2=ec2, today=TODAY,
                              ec2_types=["g6.xlarge"], rds_classes=["db.r7g.large"],
                              cache_nodes=["cache.r7g.large"])
    expected = {"ec2/on-demand/g6.xlarge": 0.8048, "ec2/reserved-1yr/g6.xlarge": 0.507,
                "ec2/reserved-3yr/g6.xlarge": 0.349, "rds/postgres/db.r7g.large": 0.25,
                "elasticache/redis/cache.r7g.large": 0.219,
                "elasticache/valkey/cache.r7g.large": 0.1752,
                "ec2/spot/g6.xlarge": pytest.approx(0.6)}  # mean of 0.5, 0.6, 0.7
    for key, usd in expected.items():
        price = fresh.get(key)
        assert price.usd == usd, key
        assert price.date == TODAY
    assert fresh.get("ec2/on-demand/g6.xlarge").source == "aws-price-list-api"
    assert fresh.get("ec2/spot/g6.xlarge").source == "aws-spot-price-history"
    assert "2026-11-24 to 2026-12-01" in fresh.sources["aws-spot-price-history"].ref
    # everything not fetched is carried over with its own date and source
    assert fresh.get("eks/cluster/standard") == base.get("eks/cluster/standard")
    assert fresh.get("ec2/on-demand/p5.48xlarge") == base.get("ec2/on-demand/p5.48xlarge")
    used = {e.source for e in (*fresh.prices.values(), *fresh.gaps.values(),
                               *fresh.spot_advisor.values())}
    assert used == set(fresh.sources)
    # the stated gaps and the Spot Advisor bands survive a refresh
    assert "ec2/reserved-1yr/p5.48xlarge" in fresh.gaps
    assert fresh.spot_advisor == load_catalogue("us-east-1").spot_advisor


def test_refresh_command_writes_the_catalogue(monkeypatch, tmp_path, capsys) -> None:
    base = load_catalogue("us-east-1")
    monkeypatch.setattr("infra.cost.refresh.clients", lambda region: (None, None))
    monkeypatch.setattr("infra.cost.refresh.refresh_catalogue",
                        lambda region, *, base, pricing, ec2, spot_days: base)
    target = tmp_path / "prices-us-east-1.yaml"
    assert run_prices_refresh("us-east-1", output=target) == 0
    assert read_catalogue(target) == base
    assert f"to {target}" in capsys.readouterr().out
