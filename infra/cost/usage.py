"""Usage assumptions for usage-based prices (GB through NAT, S3 GB, …), like Infracost's.

A usage file has defaults per resource type (Pulumi type token) and overrides per resource
name::

    resource_type_default_usage:
      aws:ec2/natGateway:NatGateway:
        monthly_data_processed_gb: 200      # per NAT gateway
    resource_usage:
      aiinfra-prod-serving-models:
        storage_gb: 120

Keys per type: NAT gateways and interface endpoints ``monthly_data_processed_gb``; S3
buckets, EFS file systems and ECR repositories ``storage_gb``; EFS file systems in elastic
throughput mode also ``monthly_read_gb`` and ``monthly_write_gb``; log groups
``monthly_data_ingested_gb`` and ``storage_gb``; SQS queues ``monthly_requests``; the
serving Deployment ``expected_replicas`` (the GPU NodePools' expected nodes); spot NodePools
and node groups ``spot_on_demand_share`` (the share of their hours assumed to fall back to
on-demand, 0 to 1; default from the Spot Advisor band, ``infra.cost.spot``). A
usage-based charge without a figure is listed with its price and left out of the totals.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from infra.cost.catalogue import DATA_DIR

KNOWN_KEYS = {"monthly_data_processed_gb", "storage_gb", "monthly_data_ingested_gb",
              "monthly_requests", "monthly_read_gb", "monthly_write_gb", "expected_replicas",
              "spot_on_demand_share"}
SHARES = {"spot_on_demand_share"}  # fractions: 0 to 1


class UsageError(ValueError):
    """The usage file is invalid."""


class Usage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = "0.1"
    resource_type_default_usage: dict[str, dict[str, float]] = Field(default_factory=dict)
    resource_usage: dict[str, dict[str, float]] = Field(default_factory=dict)
    source: str | None = Field(None, exclude=True)

    def value(self, type_token: str, name: str, key: str) -> float | None:
        per_resource = self.resource_usage.get(name, {})
        if key in per_resource:
            return per_resource[key]
        return self.resource_type_default_usage.get(type_token, {}).get(key)


def parse_usage(data: dict, *, source: str = "usage") -> Usage:
    try:
        usage = Usage.model_validate({**data, "source": source})
    except ValidationError as exc:
        raise UsageError(f"{source}: {exc}") from None
    for table in (usage.resource_type_default_usage, usage.resource_usage):
        for owner, values in table.items():
            unknown = set(values) - KNOWN_KEYS
            if unknown:
                raise UsageError(f"{source}: {owner}: unknown usage key(s) "
                                 f"{', '.join(sorted(unknown))}; known: "
                                 f"{', '.join(sorted(KNOWN_KEYS))}")
            negative = [k for k, v in values.items() if v < 0]
            if negative:
                raise UsageError(f"{source}: {owner}: {', '.join(negative)} must be ≥ 0")
            over = [k for k, v in values.items() if k in SHARES and v > 1]
            if over:
                raise UsageError(f"{source}: {owner}: {', '.join(over)} is a share: 0 to 1")
    return usage


def default_usage_path(stack: str) -> Path:
    return DATA_DIR / f"usage-{stack}.yaml"


def load_usage(stack: str, path: Path | None = None) -> Usage | None:
    """``path`` if given, else the stack's ``infra/data/usage-<stack>.yaml`` if present."""
    path = path or default_usage_path(stack)
    if not path.is_file():
        if path != default_usage_path(stack):
            raise UsageError(f"no usage file at {path}")
        return None
    return parse_usage(yaml.safe_load(path.read_text()) or {}, source=str(path))
