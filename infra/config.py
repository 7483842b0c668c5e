"""The stack's typed configuration, read once and validated before any resource is made.

Keys are the ``aiinfra:*`` values of ``Pulumi.<stack>.yaml`` (camelCase, as Pulumi shows
them), with the defaults declared in ``Pulumi.yaml``. Every error says which key is wrong and
how to fix it.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from infra.catalog import catalog, eks_versions

PROJECT = "aiinfra"
# Offline, in place of a value the account's operator sets (`pulumi config set`) and the
# repository does not hold.
OPERATOR_SET = "[set by the operator]"
# RFC 5737 §3: reserved for documentation, never routed.
DOCUMENTATION_RANGES = tuple(ipaddress.ip_network(n) for n in (
    "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"))


class ConfigError(ValueError):
    """The stack configuration is invalid; the message lists each problem and its fix."""


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid",
                              frozen=True)


def _known_ec2(instance_type: str) -> str:
    if instance_type not in catalog().ec2:
        raise ValueError(f"unknown instance type {instance_type!r}: add it to "
                         "infra/data/instances.yaml or pick one of "
                         + ", ".join(sorted(catalog().ec2)))
    return instance_type


class Scaling(_Model):
    min_size: int = Field(ge=0)
    desired_size: int = Field(ge=0)
    max_size: int = Field(ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> Scaling:
        if not self.min_size <= self.desired_size <= self.max_size:
            raise ValueError(f"sizes must satisfy minSize ≤ desiredSize ≤ maxSize, got "
                             f"{self.min_size} / {self.desired_size} / {self.max_size}")
        return self


class SystemPool(Scaling):
    instance_type: str = "m7i.large"
    disk_gib: int = Field(50, ge=20)

    @field_validator("instance_type")
    @classmethod
    def _known(cls, value: str) -> str:
        return _known_ec2(value)


class GpuPool(_Model):
    """One GPU pool: a Karpenter NodePool of one GPU shape and one capacity type."""

    name: str
    capacity: Literal["reserved", "on-demand", "spot"]
    instance_types: list[str] = Field(min_length=1)
    # The most nodes the pool may run (its NodePool's limits; the cost preview's max).
    max_nodes: int = Field(ge=1)
    ami_family: Literal["al2023-nvidia", "bottlerocket-nvidia"] = "al2023-nvidia"
    # The EKS-optimized AMI release Karpenter uses (``latest``, or e.g. ``v20251120`` to pin).
    ami_version: str = Field("latest", pattern=r"^(latest|v\d{8})$")
    disk_gib: int = Field(100, ge=50)
    labels: dict[str, str] = Field(default_factory=dict)
    reserved_term: Literal["1yr", "3yr"] | None = None
    create_capacity_reservation: bool = False
    # Instances the capacity reservation holds (reserved pools that create one).
    reserved_nodes: int | None = Field(None, ge=1)

    @field_validator("name")
    @classmethod
    def _dns_name(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z][a-z0-9-]{1,30}", value):
            raise ValueError(f"pool name {value!r}: use 2-31 lowercase letters, digits or "
                             "dashes, starting with a letter (it becomes part of AWS names)")
        return value

    @field_validator("instance_types")
    @classmethod
    def _gpu_types(cls, value: list[str]) -> list[str]:
        for instance_type in value:
            _known_ec2(instance_type)
            if not catalog().ec2[instance_type].gpus:
                raise ValueError(f"{instance_type} has no GPU: GPU pools need g4dn, g5, g6, "
                                 "g6e, p4d or p5 types")
        if len(set(value)) != len(value):
            raise ValueError("instanceTypes lists a type twice")
        shapes = {(catalog().ec2[t].gpus, catalog().ec2[t].gpu_memory_gib) for t in value}
        if len(shapes) > 1:
            listed = ", ".join(f"{t} ({catalog().ec2[t].gpus} × "
                               f"{catalog().ec2[t].gpu_memory_gib / catalog().ec2[t].gpus:g} "
                               "GiB)" for t in value)
            raise ValueError(f"one GPU shape per pool (GPU count and memory), got {listed}: "
                             "split them into pools")
        return value

    @model_validator(mode="after")
    def _capacity_rules(self) -> GpuPool:
        if self.capacity == "spot" and len(self.instance_types) < 3:
            raise ValueError(
                f"spot pool {self.name!r} lists {len(self.instance_types)} instance type(s): "
                "spot pools need at least 3 so capacity can be found when one type runs out "
                "(e.g. g6.xlarge, g6.2xlarge, g5.xlarge)")
        if self.capacity == "reserved":
            if self.reserved_term is None:
                raise ValueError(f"reserved pool {self.name!r} needs reservedTerm: 1yr or 3yr "
                                 "(how it is priced)")
            if self.create_capacity_reservation:
                if len(self.instance_types) != 1:
                    raise ValueError(f"reserved pool {self.name!r}: a capacity reservation "
                                     "holds one instance type; list exactly one")
                if self.reserved_nodes is None or self.reserved_nodes > self.max_nodes:
                    raise ValueError(f"reserved pool {self.name!r}: reservedNodes (the "
                                     "reservation's size) is required, at most maxNodes")
            elif self.reserved_nodes is not None:
                raise ValueError(f"reserved pool {self.name!r}: reservedNodes sizes a capacity "
                                 "reservation; set createCapacityReservation: true")
        elif self.reserved_term or self.create_capacity_reservation or self.reserved_nodes:
            raise ValueError(f"pool {self.name!r} is {self.capacity}: reservedTerm, "
                             "createCapacityReservation and reservedNodes apply to reserved "
                             "pools only")
        return self

    @property
    def gpus_per_node(self) -> int:
        return min(catalog().ec2[t].gpus for t in self.instance_types)


class Database(_Model):
    instance_class: str = "db.t4g.medium"
    # A minor RDS still creates: 16.5-16.8 and 17.1-17.4 were refused from 1 May 2026 and
    # upgraded to 16.11 / 17.7 or higher (AWS Health notice of 2026-05). RDS then applies
    # newer minors itself (auto minor upgrades); the program ignores that drift.
    engine_version: str = "17.7"
    allocated_storage_gib: int = Field(20, ge=20)
    max_allocated_storage_gib: int = Field(100, ge=20)
    multi_az: bool = False
    backup_retention_days: int = Field(1, ge=0, le=35)
    deletion_protection: bool = False
    performance_insights: bool = True
    workload: Literal["web", "oltp"] = "oltp"

    @field_validator("instance_class")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in catalog().rds:
            raise ValueError(f"unknown RDS instance class {value!r}: add it to "
                             "infra/data/instances.yaml or pick one of "
                             + ", ".join(sorted(catalog().rds)))
        return value


class Cache(_Model):
    node_type: str = "cache.t4g.small"
    replicas: int = Field(1, ge=0, le=5, description="read replicas besides the primary")
    engine_version: str = "7.1"

    @field_validator("node_type")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in catalog().elasticache:
            raise ValueError(f"unknown ElastiCache node type {value!r}: add it to "
                             "infra/data/instances.yaml or pick one of "
                             + ", ".join(sorted(catalog().elasticache)))
        return value


class Monitoring(_Model):
    retention_days: int = Field(7, ge=1)
    storage_gib: int = Field(20, ge=5)
    grafana: bool = True
    # Where Alertmanager sends alerts; the URL (or PagerDuty routing key) is the Pulumi secret
    # `aiinfra:alertReceiverUrl` (`pulumi config set --secret`), never in the stack file.
    alert_receiver: Literal["none", "slack", "webhook", "pagerduty"] = "none"
    alert_channel: str = "#ml-serving-alerts"  # Slack only


class Serving(_Model):
    min_replicas: int = Field(1, ge=0, description="KEDA's minReplicaCount; 0 (outside prod "
                              "only) parks the Deployment at zero once idle: with no pod "
                              "nothing queues, so only raising it again brings it back")
    max_replicas: int = Field(4, ge=1)
    gpus_per_pod: int = Field(1, ge=1)
    queue_depth_target: int = Field(8, ge=1, description="KEDA target: queued requests per pod")
    p95_latency_target_s: float = Field(
        0.4, gt=0, le=60, description="KEDA guardrail: p95 request latency (seconds) over "
        "which replicas are added whatever the queue depth; below the 500 ms latency alert")
    grace_period_s: int = Field(30, ge=5)
    image_tag: str = "0.1.0"
    build_image: bool = Field(True, description="build image/ and push it to the stack's ECR")
    gpu_image: bool = Field(True, description="image/Dockerfile (GPU) or Dockerfile.cpu")
    models: list[str] = Field(default_factory=lambda: ["*"])

    @model_validator(mode="after")
    def _ordered(self) -> Serving:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"minReplicas {self.min_replicas} is over maxReplicas "
                             f"{self.max_replicas}")
        return self


class CostThresholds(_Model):
    """``aiinfra cost STACK --diff REF`` thresholds on the expected monthly increase, as
    ``+$500`` (dollars a month) or ``+10%`` (of the baseline); the flags override them."""

    warn_above: str | None = None
    fail_above: str | None = None

    @field_validator("warn_above", "fail_above")
    @classmethod
    def _threshold(cls, value: str | None) -> str | None:
        from infra.cost.thresholds import Threshold  # noqa: PLC0415 - the cost engine's parser

        if value is not None:
            Threshold.parse(value)
        return value


class StackConfig(_Model):
    environment: Literal["dev", "staging", "prod"]
    region: str = "us-east-1"
    availability_zones: int = Field(3, ge=2, le=4)
    vpc_cidr: str = "10.0.0.0/16"
    nat_gateways: Literal["single", "per-az"] = "single"
    cluster_version: str = "1.35"
    # Stay on a version past its standard support, at the extended rate (asked for, never
    # fallen into: EKS turns extended support on by default).
    extended_support: bool = False
    # This program deploys Kubernetes objects through the cluster's API endpoint from wherever
    # `pulumi up` runs: that machine must reach it. Public access limited to the deployer's
    # networks (CI egress, VPN), or private-only with the deployer's routed networks admitted
    # on 443. The private endpoint is always on, for nodes and pods.
    endpoint_public_access: bool = True
    public_access_cidrs: list[str] = Field(default_factory=list)
    private_access_cidrs: list[str] = Field(default_factory=list)
    # IAM roles or users (CI's deployer, the platform team) made cluster admins through EKS
    # access entries; the principal that creates the cluster is one in any case.
    cluster_admins: list[str] = Field(default_factory=list)
    system_pool: SystemPool = SystemPool(min_size=2, desired_size=2, max_size=3)
    gpu_pools: list[GpuPool] = Field(min_length=1)
    database: Database = Database()
    cache: Cache = Cache()
    monitoring: Monitoring = Monitoring()
    serving: Serving = Serving()
    tags: dict[str, str] = Field(default_factory=dict)
    budget_monthly_usd: float | None = Field(None, gt=0)
    cost_thresholds: CostThresholds = CostThresholds()

    @field_validator("vpc_cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        network = ipaddress.ip_network(value)
        if network.prefixlen > 18:
            raise ValueError(f"vpcCidr {value} is too small: use /18 or larger (e.g. "
                             "10.0.0.0/16) so each AZ gets room for nodes and pods")
        return value

    @field_validator("cluster_admins")
    @classmethod
    def _principals(cls, value: list[str]) -> list[str]:
        for arn in value:
            if not re.fullmatch(r"arn:aws[a-z-]*:iam::\d{12}:(role|user)/[\w+=,.@/-]+", arn):
                raise ValueError(f"{arn!r} is not an IAM role or user ARN "
                                 "(arn:aws:iam::123456789012:role/NAME)")
        return value

    @field_validator("public_access_cidrs", "private_access_cidrs")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            network = ipaddress.ip_network(cidr)
            if network.version != 4:  # noqa: PLR2004
                raise ValueError(f"{cidr}: EKS endpoint access rules take IPv4 networks")
            if any(network.subnet_of(doc) for doc in DOCUMENTATION_RANGES):
                raise ValueError(f"{cidr} is a documentation range (RFC 5737): no runner's "
                                 "address is in it; list the egress of the machine that runs "
                                 "`pulumi up` (CI runner, VPN)")
        return value

    @field_validator("cluster_version")
    @classmethod
    def _known_version(cls, value: str) -> str:
        versions = eks_versions().versions
        if value not in versions:
            raise ValueError(f"clusterVersion {value!r} is not an EKS version we know the "
                             f"support dates of ({', '.join(versions)}): add it to "
                             "infra/data/eks-versions.yaml")
        return value

    @model_validator(mode="after")
    def _supported_version(self) -> StackConfig:
        """The version is in standard support on the price catalogue's date, unless the stack
        asks for extended support (and so pays for it)."""
        from infra.cost.catalogue import load_catalogue  # noqa: PLC0415 - data, read once

        support = eks_versions().versions[self.cluster_version]
        on = max(price.date for price in load_catalogue(self.region).prices.values())
        if support.end_of_extended < on:
            raise ValueError(f"EKS {self.cluster_version} left extended support on "
                             f"{support.end_of_extended}: move clusterVersion to a newer one")
        if support.end_of_standard < on and not self.extended_support:
            newest = max(eks_versions().versions, key=lambda v: tuple(map(int, v.split("."))))
            raise ValueError(
                f"EKS {self.cluster_version} left standard support on "
                f"{support.end_of_standard} (prices of {on}): move clusterVersion to "
                f"{newest}, or set extendedSupport: true to pay the extended rate")
        return self

    @model_validator(mode="after")
    def _reachable(self, info: ValidationInfo) -> StackConfig:
        """The machine that runs `pulumi up` can reach the API endpoint it deploys through."""
        if not self.endpoint_public_access and not self.private_access_cidrs:
            raise ValueError(
                "endpointPublicAccess: false makes the API reachable from inside the VPC only, "
                "and this program deploys Kubernetes objects from wherever `pulumi up` runs: "
                "list the networks it runs from (a VPN or runner network routed to the VPC) in "
                "privateAccessCidrs, or keep the public endpoint limited to publicAccessCidrs")
        offline = bool((info.context or {}).get("offline"))
        if self.endpoint_public_access and not self.public_access_cidrs and not offline:
            raise ValueError(
                "publicAccessCidrs is empty, and EKS opens such an endpoint to 0.0.0.0/0: name "
                "the networks `pulumi up` runs from, e.g. pulumi config set --path "
                "'aiinfra:publicAccessCidrs[0]' <CI egress IP>/32")
        return self

    @property
    def endpoint_cidrs(self) -> list[str]:
        """The public endpoint's networks; offline, a stand-in where the operator sets them."""
        return self.public_access_cidrs or [OPERATOR_SET]

    @model_validator(mode="after")
    def _environment_rules(self) -> StackConfig:
        names = [p.name for p in self.gpu_pools]
        if len(set(names)) != len(names):
            raise ValueError("gpuPools names must be unique")
        missing_tags = [t for t in ("team", "cost-center") if t not in self.tags]
        if missing_tags:
            raise ValueError(f"tags must include {', '.join(missing_tags)} (cost allocation)")
        if self.environment != "prod":
            return self
        problems = []
        if not self.database.multi_az:
            problems.append("database.multiAz must be true")
        if not self.database.deletion_protection:
            problems.append("database.deletionProtection must be true")
        if self.database.backup_retention_days < 7:
            problems.append("database.backupRetentionDays must be at least 7")
        if self.endpoint_public_access and "0.0.0.0/0" in self.public_access_cidrs:
            problems.append("the cluster endpoint must be private (endpointPublicAccess: "
                            "false) or limited to known publicAccessCidrs")
        if self.serving.min_replicas < 2:
            problems.append("serving.minReplicas must be at least 2 (scale to zero and a "
                            "single replica are for dev and staging)")
        if self.nat_gateways != "per-az":
            problems.append("natGateways must be per-az (one NAT per AZ survives an AZ loss)")
        if self.monitoring.alert_receiver == "none":
            problems.append("monitoring.alertReceiver must name a receiver (slack, webhook or "
                            "pagerduty): the chart's default route sends alerts nowhere")
        if self.cache.replicas < 1:
            problems.append("cache.replicas must be at least 1 (automatic failover)")
        if not any(p.capacity in ("on-demand", "reserved") for p in self.gpu_pools):
            problems.append("gpuPools needs an on-demand or reserved pool as a baseline "
                            "under spot")
        if problems:
            raise ValueError("prod requires: " + "; ".join(problems))
        return self

    @property
    def name_prefix(self) -> str:
        return f"{PROJECT}-{self.environment}"

    @property
    def all_tags(self) -> dict[str, str]:
        return {"env": self.environment, "project": PROJECT, "managed-by": "pulumi",
                **self.tags}


def _format(error: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid stack configuration ({error.error_count()} problem(s)):"]
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(top level)"
        key = f"{PROJECT}:{where}" if item["loc"] else where
        lines.append(f"  - {key}: {item['msg'].removeprefix('Value error, ')}")
    return "\n".join(lines)


def parse_stack_config(values: dict, *, source: str = "stack config",
                       offline: bool = False) -> StackConfig:
    """Validate a mapping of camelCase keys (without the ``aiinfra:`` prefix). ``offline``
    (preview, cost, check): values only the account's operator sets may be absent."""
    try:
        return StackConfig.model_validate(values, context={"offline": offline})
    except ValidationError as exc:
        raise ConfigError(_format(exc, source)) from None


def read_pulumi_config(*, offline: bool = False) -> StackConfig:
    """Read ``aiinfra:*`` (and ``aws:region``) through ``pulumi.Config``; validate once."""
    import pulumi  # noqa: PLC0415 - only inside a Pulumi program

    config = pulumi.Config(PROJECT)
    values: dict = {}
    for name, field in StackConfig.model_fields.items():
        key = field.alias or name
        raw = config.get(key)
        if raw is None:
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        if field.annotation is str and not isinstance(value, str):
            value = raw  # e.g. clusterVersion "1.33" must stay a string
        values[key] = value
    region = pulumi.Config("aws").get("region")
    if region:
        values["region"] = region
    return parse_stack_config(values, source=f"Pulumi.{pulumi.get_stack()}.yaml",
                              offline=offline)
