"""``aiinfra prices refresh``: rebuild a region's instance prices from AWS with boto3.

- EC2 on-demand and reserved (standard, no upfront, 1yr and 3yr) Linux prices, RDS for
  PostgreSQL Single-AZ on-demand prices and ElastiCache on-demand node prices (Redis OSS and
  Valkey) from the Price List Query API (``pricing:GetProducts``);
- spot prices as the mean of ``ec2:DescribeSpotPriceHistory`` over the last days (Linux/UNIX,
  every AZ of the region).

The instance types are those of ``infra/data/instances.yaml``. Service prices (EKS, NAT, EBS,
S3, …) are carried over from the current catalogue with their own dates and sources. Needs AWS
credentials with ``pricing:GetProducts`` and ``ec2:DescribeSpotPriceHistory``; never run in
tests or CI (the tests use botocore's Stubber).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from typing import Any

from infra.cost.catalogue import Catalogue, Price, Source

PRICE_LIST_REGION = "us-east-1"  # the Price List Query API answers from here
API_SOURCE = "aws-price-list-api"
SPOT_SOURCE = "aws-spot-price-history"


def _products(client: Any, service: str, filters: dict[str, str]) -> list[dict]:
    """Every product (with terms) matching ``filters``, following NextToken."""
    request = {"ServiceCode": service, "FormatVersion": "aws_v1",
               "Filters": [{"Type": "TERM_MATCH", "Field": k, "Value": v}
                           for k, v in filters.items()]}
    products: list[dict] = []
    while True:
        page = client.get_products(**request)
        products += [json.loads(item) if isinstance(item, str) else item
                     for item in page.get("PriceList", [])]
        token = page.get("NextToken")
        if not token:
            return products
        request["NextToken"] = token


def _hourly(term: dict) -> float | None:
    for dimension in term.get("priceDimensions", {}).values():
        if dimension.get("unit") in ("Hrs", "Hours"):
            value = float(dimension["pricePerUnit"]["USD"])
            if value > 0:
                return value
    return None


def on_demand_hourly(product: dict) -> float | None:
    for term in product.get("terms", {}).get("OnDemand", {}).values():
        value = _hourly(term)
        if value is not None:
            return value
    return None


def reserved_hourly(product: dict, term_length: str) -> float | None:
    """Effective hourly rate of the standard, no-upfront reserved term (``1yr``/``3yr``)."""
    for term in product.get("terms", {}).get("Reserved", {}).values():
        attributes = term.get("termAttributes", {})
        if (attributes.get("LeaseContractLength") == term_length
                and attributes.get("PurchaseOption") == "No Upfront"
                and attributes.get("OfferingClass", "standard") == "standard"):
            value = _hourly(term)
            if value is not None:
                return value
    return None


def _node_usage(product: dict, node_type: str) -> bool:
    usage = product.get("product", {}).get("attributes", {}).get("usagetype", "")
    return usage.split("-", 1)[-1] == f"NodeUsage:{node_type}" or usage == f"NodeUsage:{node_type}"


def fetch_instance_prices(pricing: Any, region: str, *, ec2_types: Iterable[str],
                          rds_classes: Iterable[str], cache_nodes: Iterable[str],
                          ) -> dict[str, float]:
    prices: dict[str, float] = {}
    for instance_type in ec2_types:
        for product in _products(pricing, "AmazonEC2", {
                "regionCode": region, "instanceType": instance_type,
                "operatingSystem": "Linux", "tenancy": "Shared", "preInstalledSw": "NA",
                "capacitystatus": "Used", "licenseModel": "No License required"}):
            od = on_demand_hourly(product)
            if od is not None:
                prices[f"ec2/on-demand/{instance_type}"] = od
            for term in ("1yr", "3yr"):
                ri = reserved_hourly(product, term)
                if ri is not None:
                    prices[f"ec2/reserved-{term}/{instance_type}"] = ri
    for instance_class in rds_classes:
        for product in _products(pricing, "AmazonRDS", {
                "regionCode": region, "instanceType": instance_class,
                "databaseEngine": "PostgreSQL", "deploymentOption": "Single-AZ"}):
            od = on_demand_hourly(product)
            if od is not None:
                prices[f"rds/postgres/{instance_class}"] = od
    for node_type in cache_nodes:
        for engine in ("Redis", "Valkey"):
            for product in _products(pricing, "AmazonElastiCache", {
                    "regionCode": region, "instanceType": node_type, "cacheEngine": engine}):
                od = on_demand_hourly(product)
                if od is not None and _node_usage(product, node_type):
                    prices[f"elasticache/{engine.lower()}/{node_type}"] = od
    return prices


def fetch_spot_prices(ec2: Any, instance_types: Iterable[str], *, start: dt.datetime,
                      end: dt.datetime) -> dict[str, float]:
    """Mean Linux/UNIX spot price per type over [start, end], all AZs of the client's region."""
    samples: dict[str, list[float]] = {}
    request: dict[str, Any] = {"InstanceTypes": list(instance_types),
                               "ProductDescriptions": ["Linux/UNIX"],
                               "StartTime": start, "EndTime": end}
    while True:
        page = ec2.describe_spot_price_history(**request)
        for point in page.get("SpotPriceHistory", []):
            samples.setdefault(point["InstanceType"], []).append(float(point["SpotPrice"]))
        token = page.get("NextToken")
        if not token:
            break
        request["NextToken"] = token
    return {f"ec2/spot/{t}": sum(v) / len(v) for t, v in samples.items() if v}


def refresh_catalogue(region: str, *, base: Catalogue, pricing: Any, ec2: Any,
                      today: dt.date | None = None, spot_days: int = 7,
                      ec2_types: Iterable[str] | None = None,
                      rds_classes: Iterable[str] | None = None,
                      cache_nodes: Iterable[str] | None = None) -> Catalogue:
    """``base`` with every instance price it can fetch replaced by today's figure."""
    from infra.catalog import catalog  # noqa: PLC0415

    today = today or dt.datetime.now(dt.UTC).date()
    instances = catalog()
    ec2_types = list(instances.ec2 if ec2_types is None else ec2_types)
    fetched = fetch_instance_prices(
        pricing, region, ec2_types=ec2_types,
        rds_classes=instances.rds if rds_classes is None else rds_classes,
        cache_nodes=instances.elasticache if cache_nodes is None else cache_nodes)
    end = dt.datetime.combine(today, dt.time(), tzinfo=dt.UTC)
    start = end - dt.timedelta(days=spot_days)
    gpu_types = [t for t in ec2_types if t not in instances.ec2 or instances.ec2[t].gpus]
    spot = fetch_spot_prices(ec2, gpu_types, start=start, end=end) if gpu_types else {}
    sources = dict(base.sources)
    sources[API_SOURCE] = Source(
        ref=f"https://pricing.{PRICE_LIST_REGION}.amazonaws.com (AWS Price List Query API, "
            f"GetProducts, regionCode={region})",
        description=f"On-demand and standard no-upfront reserved hourly prices read on "
                    f"{today.isoformat()} by `aiinfra prices refresh`.")
    if spot:
        sources[SPOT_SOURCE] = Source(
            ref=f"EC2 DescribeSpotPriceHistory, {region}, Linux/UNIX, "
                f"{start.date().isoformat()} to {end.date().isoformat()}",
            description=f"Mean of the spot prices published in every AZ of {region} over "
                        f"{spot_days} days, read by `aiinfra prices refresh`.")
    prices = dict(base.prices)
    for key, usd in fetched.items():
        prices[key] = Price(usd=usd, unit="hour", date=today, source=API_SOURCE)
    for key, usd in spot.items():
        prices[key] = Price(usd=usd, unit="hour", date=today, source=SPOT_SOURCE,
                            note=f"{spot_days}-day mean")
    # gaps the fetch filled are gaps no more; the Spot Advisor figures are carried over
    gaps = {k: v for k, v in base.gaps.items() if k not in prices}
    used = {e.source for e in (*prices.values(), *gaps.values(), *base.spot_advisor.values())}
    return Catalogue(region=region, currency=base.currency,
                     hours_per_month=base.hours_per_month,
                     sources={k: v for k, v in sources.items() if k in used}, prices=prices,
                     gaps=gaps, spot_advisor=base.spot_advisor)


def clients(region: str) -> tuple[Any, Any]:  # pragma: no cover - needs AWS credentials
    import boto3  # noqa: PLC0415 - optional dependency (the infra extra)

    return (boto3.client("pricing", region_name=PRICE_LIST_REGION),
            boto3.client("ec2", region_name=region))
