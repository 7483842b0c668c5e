"""Price a rendered resource graph: one line per priced item, min / expected / max a month.

Three columns where autoscaling makes cost a range: **min** prices node groups at their
minimum size, **expected** at their desired size, **max** at their maximum size. Everything
else is the same in all three. Monthly = hourly × the catalogue's hours per month (730).

How node groups are priced:

- on-demand: EKS launches on-demand capacity in the listed order (prioritized), so every
  column uses the first instance type;
- spot: capacity-optimized allocation spreads over the listed types, so *expected* uses the
  mean of their spot prices, *min* the cheapest and *max* the dearest;
- reserved: the pool's reserved term (``reservedTerm`` in the stack config) at the
  no-upfront effective hourly rate. A capacity reservation for the pool is billed in full
  (its instance count, all month) at that rate; the node group then adds only the nodes
  beyond the reservation, at the on-demand rate. No double counting.
- every node's gp3 root volume comes from its launch template.

A resource whose price is not in the catalogue is listed as **unpriced** (no amount; the
totals exclude it and say so). A usage-based charge without a usage figure is listed with
its price and excluded. Resources that AWS does not bill for (IAM, subnets, security groups,
route tables, …) are not listed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from infra.catalog import catalog as instance_catalog
from infra.cost.catalogue import Catalogue, load_catalogue
from infra.cost.usage import Usage
from infra.render import Graph, Resource

Status = Literal["priced", "unpriced", "usage"]


@dataclass(frozen=True)
class Range:
    """A monthly figure in the three columns."""

    min: float
    expected: float
    max: float

    @classmethod
    def of(cls, value: float) -> Range:
        return cls(value, value, value)

    def __add__(self, other: Range) -> Range:
        return Range(self.min + other.min, self.expected + other.expected,
                     self.max + other.max)

    def __sub__(self, other: Range) -> Range:
        return Range(self.min - other.min, self.expected - other.expected,
                     self.max - other.max)

    def __mul__(self, other: Range | float) -> Range:
        if isinstance(other, Range):
            return Range(self.min * other.min, self.expected * other.expected,
                         self.max * other.max)
        return Range(self.min * other, self.expected * other, self.max * other)

    def map(self, fn: Callable[[float], float]) -> Range:
        return Range(fn(self.min), fn(self.expected), fn(self.max))

    def as_dict(self) -> dict[str, float]:
        return {"min": self.min, "expected": self.expected, "max": self.max}


ZERO = Range.of(0.0)


@dataclass
class LineItem:
    component: str
    type: str
    name: str
    item: str                       # stable kind: instances, storage, hours, data, …
    description: str
    unit: str                       # unit of ``quantity`` and of the unit price
    quantity: Range
    unit_price: Range | None        # None: unpriced
    status: Status = "priced"
    price_keys: tuple[str, ...] = ()
    note: str = ""

    @property
    def monthly(self) -> Range | None:
        if self.status != "priced" or self.unit_price is None:
            return None
        return self.quantity * self.unit_price

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.type, self.name, self.item)

    def as_dict(self) -> dict:
        monthly = self.monthly
        return {"component": self.component, "type": self.type, "name": self.name,
                "item": self.item, "description": self.description, "unit": self.unit,
                "quantity": self.quantity.as_dict(),
                "unit_price": self.unit_price.as_dict() if self.unit_price else None,
                "monthly": monthly.as_dict() if monthly else None, "status": self.status,
                "price_keys": list(self.price_keys), "note": self.note}


@dataclass
class PoolCost:
    """One GPU pool: how many nodes, and what one node costs an hour (for $/1M inferences)."""

    name: str
    capacity: str
    instance_types: list[str]
    nodes: Range
    node_hourly: Range | None
    gpus_per_node: int

    def as_dict(self) -> dict:
        return {"name": self.name, "capacity": self.capacity,
                "instance_types": self.instance_types, "nodes": self.nodes.as_dict(),
                "node_hourly": self.node_hourly.as_dict() if self.node_hourly else None,
                "gpus_per_node": self.gpus_per_node}


@dataclass
class Report:
    stack: str
    region: str
    hours_per_month: float
    lines: list[LineItem]
    pools: list[PoolCost]
    budget_usd: float | None = None
    usage_source: str | None = None
    catalogue_date: str | None = None
    name_prefix: str = ""

    @property
    def priced(self) -> list[LineItem]:
        return [li for li in self.lines if li.status == "priced"]

    @property
    def unpriced(self) -> list[LineItem]:
        return [li for li in self.lines if li.status == "unpriced"]

    @property
    def usage_missing(self) -> list[LineItem]:
        return [li for li in self.lines if li.status == "usage"]

    @property
    def total(self) -> Range:
        total = ZERO
        for line in self.priced:
            total = total + line.monthly
        return total

    def by_component(self) -> dict[str, list[LineItem]]:
        """Lines per component (in order of appearance), each resource's lines together."""
        groups: dict[str, list[LineItem]] = {}
        for line in self.lines:
            groups.setdefault(line.component, []).append(line)
        return {component: sorted(lines, key=lambda li: li.name)
                for component, lines in groups.items()}

    def component_totals(self) -> dict[str, Range]:
        return {component: sum((li.monthly for li in lines if li.status == "priced"), ZERO)
                for component, lines in self.by_component().items()}

    @property
    def over_budget(self) -> bool:
        return self.budget_usd is not None and self.total.expected > self.budget_usd

    def warnings(self) -> list[str]:
        out = [f"unpriced: {li.type} {li.name} ({li.description}): {li.note}"
               for li in self.unpriced]
        out += [f"usage not given: {li.name} {li.item} ({li.note})" for li in self.usage_missing]
        return out

    def as_dict(self) -> dict:
        return {"stack": self.stack, "region": self.region,
                "hours_per_month": self.hours_per_month,
                "currency": "USD", "catalogue_date": self.catalogue_date,
                "usage_file": self.usage_source,
                "total": self.total.as_dict(), "budget_monthly_usd": self.budget_usd,
                "over_budget": self.over_budget,
                "components": {c: r.as_dict() for c, r in self.component_totals().items()},
                "lines": [li.as_dict() for li in self.lines],
                "pools": [p.as_dict() for p in self.pools],
                "unpriced": [li.as_dict() for li in self.unpriced],
                "warnings": self.warnings()}


COMPONENT_ORDER = ("network", "cluster", "nodes", "gpu", "database", "cache", "monitoring",
                   "serving")

# Types AWS does not bill for (or that are priced through another resource).
FREE_TYPES = {
    "aws:ec2/vpc:Vpc", "aws:ec2/subnet:Subnet", "aws:ec2/routeTable:RouteTable",
    "aws:ec2/route:Route", "aws:ec2/routeTableAssociation:RouteTableAssociation",
    "aws:ec2/internetGateway:InternetGateway", "aws:ec2/securityGroup:SecurityGroup",
    "aws:ec2/securityGroupRule:SecurityGroupRule",
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
    "aws:ec2/launchTemplate:LaunchTemplate",  # priced with its node group
    "aws:eks/addon:Addon", "aws:eks/accessEntry:AccessEntry",
    "aws:eks/accessPolicyAssociation:AccessPolicyAssociation",
    "aws:eks/podIdentityAssociation:PodIdentityAssociation",
    "aws:rds/parameterGroup:ParameterGroup", "aws:rds/subnetGroup:SubnetGroup",
    "aws:elasticache/parameterGroup:ParameterGroup",
    "aws:elasticache/subnetGroup:SubnetGroup",
    "aws:s3/bucketVersioning:BucketVersioning", "aws:s3/bucketVersioningV2:BucketVersioningV2",
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketServerSideEncryptionConfigurationV2:"
    "BucketServerSideEncryptionConfigurationV2",
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
    "aws:s3/bucketPolicy:BucketPolicy",
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
    "aws:s3/bucketLifecycleConfigurationV2:BucketLifecycleConfigurationV2",
    "aws:sqs/queuePolicy:QueuePolicy", "aws:ecr/lifecyclePolicy:LifecyclePolicy",
    "aws:ecr/repositoryPolicy:RepositoryPolicy", "aws:kms/alias:Alias",
    "aws:efs/mountTarget:MountTarget", "aws:efs/accessPoint:AccessPoint",
    # Rules matching AWS service events on the default bus are free.
    "aws:cloudwatch/eventRule:EventRule", "aws:cloudwatch/eventTarget:EventTarget",
}
FREE_PREFIXES = ("aws:iam/",)
# Other providers (kubernetes, random, docker-build, …) create nothing AWS bills, except the
# Kubernetes objects priced below (load balancers, EBS-backed volumes).

_SIZE = re.compile(r"^\s*(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>Ki|Mi|Gi|Ti|K|M|G|T)?i?B?\s*$")


def _gib(quantity: str | int | float | None) -> float | None:
    """A Kubernetes storage quantity in GiB (``200Gi`` → 200)."""
    if quantity is None:
        return None
    if isinstance(quantity, int | float):
        return float(quantity) / 2**30
    match = _SIZE.match(str(quantity))
    if not match:
        return None
    factor = {"Ki": 2**-20, "Mi": 2**-10, "Gi": 1, "Ti": 2**10, "K": 1e3 / 2**30,
              "M": 1e6 / 2**30, "G": 1e9 / 2**30, "T": 1e12 / 2**30, None: 1 / 2**30}
    return float(match["n"]) * factor[match["unit"]]


class _Pricer:
    def __init__(self, graph: Graph, catalogue: Catalogue, usage: Usage | None) -> None:
        self.graph = graph
        self.cat = catalogue
        self.usage = usage
        self.hours = catalogue.hours_per_month
        self.lines: list[LineItem] = []
        self.pools: list[PoolCost] = []
        self.by_name = {r.name: r for r in graph.resources}
        self.components = {r.name for r in graph.resources if r.type.startswith("aiinfra:")}
        self.templates = {r.name: r for r in graph.of_type("aws:ec2/launchTemplate:LaunchTemplate")}
        self.reservations: dict[str, list[Resource]] = {}
        for odcr in graph.of_type("aws:ec2/capacityReservation:CapacityReservation"):
            pool = (odcr.inputs.get("tags") or {}).get("aiinfra.io/pool")
            if pool:
                self.reservations.setdefault(pool, []).append(odcr)
        self.pool_configs = {p.name: p for p in graph.config.gpu_pools}
        self.storage_classes = {
            (r.inputs.get("metadata") or {}).get("name", r.name): r.inputs
            for r in graph.of_type("kubernetes:storage.k8s.io/v1:StorageClass")}
        self.prefix = graph.config.name_prefix + "-"

    # helpers -----------------------------------------------------------------------------
    def component(self, resource: Resource) -> str:
        """The nearest enclosing component (``nodes``, ``network``, …) of ``resource``."""
        current, seen = resource, {resource.name}
        while current.parent in self.by_name and current.parent not in seen:
            seen.add(current.parent)
            current = self.by_name[current.parent]
            if current.name in self.components:
                return current.name.removeprefix(self.prefix)
        return "(stack)"

    def add(self, resource: Resource, item: str, description: str, unit: str,
            quantity: Range | None, price_keys: list[str] | tuple[str, ...],
            unit_price: Range | None = None, *, usage_key: str | None = None,
            note: str = "") -> LineItem:
        """Add a line priced at the catalogue price of its key, unless ``unit_price`` is given.

        A missing price makes the line unpriced; a ``None`` quantity for a usage-based charge
        (``usage_key``) makes it a usage line, listed but not totalled.
        """
        keys = tuple(price_keys)
        status: Status = "priced"
        if unit_price is None:
            missing = [k for k in keys if self.cat.usd(k) is None]
            if missing or not keys:
                status = "unpriced"
                note = note or ("no price in the catalogue for " + ", ".join(missing)
                                if missing else "no price model")
            else:
                unit_price = Range.of(self.cat.usd(keys[0]))
        if status == "priced" and usage_key is not None and quantity is None:
            status = "usage"
            note = f"set {usage_key} in the usage file"
            quantity = ZERO
        line = LineItem(self.component(resource), resource.type, resource.name, item,
                        description, unit, quantity if quantity is not None else ZERO,
                        unit_price if status != "unpriced" else None, status, keys, note)
        self.lines.append(line)
        return line

    def unpriced(self, resource: Resource, description: str, note: str,
                 item: str = "resource", keys: tuple[str, ...] = ()) -> None:
        self.lines.append(LineItem(self.component(resource), resource.type, resource.name,
                                   item, description, "", ZERO, None, "unpriced", keys, note))

    def usage_value(self, resource: Resource, key: str) -> float | None:
        return self.usage.value(resource.type, resource.name, key) if self.usage else None

    def monthly_hours(self, count: float = 1) -> Range:
        return Range.of(count * self.hours)

    # resources ---------------------------------------------------------------------------
    def price(self) -> None:
        handlers: dict[str, Callable[[Resource], None]] = {
            "aws:eks/cluster:Cluster": self.eks_cluster,
            "aws:eks/nodeGroup:NodeGroup": self.node_group,
            "aws:ec2/capacityReservation:CapacityReservation": self.capacity_reservation,
            "aws:ec2/natGateway:NatGateway": self.nat_gateway,
            "aws:ec2/eip:Eip": self.eip,
            "aws:ec2/vpcEndpoint:VpcEndpoint": self.vpc_endpoint,
            "aws:rds/instance:Instance": self.rds_instance,
            "aws:elasticache/replicationGroup:ReplicationGroup": self.cache_group,
            "aws:elasticache/cluster:Cluster": self.cache_cluster,
            "aws:s3/bucket:Bucket": self.bucket,
            "aws:s3/bucketV2:BucketV2": self.bucket,
            "aws:kms/key:Key": self.kms_key,
            "aws:efs/fileSystem:FileSystem": self.efs,
            "aws:cloudwatch/logGroup:LogGroup": self.log_group,
            "aws:ecr/repository:Repository": self.ecr_repository,
            "aws:sqs/queue:Queue": self.sqs_queue,
            "aws:lb/loadBalancer:LoadBalancer": self.load_balancer,
            "aws:alb/loadBalancer:LoadBalancer": self.load_balancer,
            "aws:ec2/instance:Instance": self.ec2_instance,
            "aws:ec2/volume:Volume": self.ebs_volume,
            "aws:ebs/volume:Volume": self.ebs_volume,
            "kubernetes:helm.sh/v3:Release": self.helm_release,
            "kubernetes:core/v1:Service": self.k8s_service,
            "kubernetes:networking.k8s.io/v1:Ingress": self.k8s_ingress,
            "kubernetes:core/v1:PersistentVolumeClaim": self.k8s_pvc,
        }
        for resource in self.graph.resources:
            handler = handlers.get(resource.type)
            if handler is not None:
                handler(resource)
            elif resource.type.startswith("aws:") and not (
                    resource.type in FREE_TYPES or resource.type.startswith(FREE_PREFIXES)):
                self.unpriced(resource, resource.type.split(":")[1],
                              "no price model for this resource type")

    def eks_cluster(self, r: Resource) -> None:
        self.add(r, "hours", "EKS control plane, standard support", "hour",
                 self.monthly_hours(), ["eks/cluster/standard"])

    # node groups
    def _capacity(self, r: Resource) -> str:
        tag = (r.inputs.get("tags") or {}).get("aiinfra.io/capacity")
        if tag in ("reserved", "spot", "on-demand"):
            return tag
        return "spot" if r.inputs.get("capacityType") == "SPOT" else "on-demand"

    def _node_price(self, types: list[str], capacity: str,
                    term: str | None) -> tuple[Range | None, list[str], str]:
        if capacity == "spot":
            keys = [f"ec2/spot/{t}" for t in types]
            prices = [self.cat.usd(k) for k in keys]
            if any(p is None for p in prices):
                return None, keys, ""
            return (Range(min(prices), sum(prices) / len(prices), max(prices)), keys,
                    f"mean of {len(types)} types" if len(types) > 1 else "")
        if capacity == "reserved":
            if term is None:
                return None, [], "reserved pool without reservedTerm"
            key = f"ec2/reserved-{term}/{types[0]}"
            usd = self.cat.usd(key)
            return (Range.of(usd) if usd is not None else None), [key], f"{term} no upfront"
        key = f"ec2/on-demand/{types[0]}"
        usd = self.cat.usd(key)
        return (Range.of(usd) if usd is not None else None), [key], ""

    def node_group(self, r: Resource) -> None:
        scaling = r.inputs.get("scalingConfig") or {}
        nodes = Range(float(scaling.get("minSize", 0)), float(scaling.get("desiredSize", 0)),
                      float(scaling.get("maxSize", 0)))
        types = list(r.inputs.get("instanceTypes") or ["t3.medium"])
        capacity = self._capacity(r)
        pool = (r.inputs.get("labels") or {}).get("aiinfra.io/pool") or \
            (r.inputs.get("tags") or {}).get("aiinfra.io/pool")
        pool_config = self.pool_configs.get(pool) if pool else None
        term = pool_config.reserved_term if pool_config else None
        node_hourly, keys, how = self._node_price(types, capacity, term)
        covered = 0.0
        reservations = self.reservations.get(pool, []) if pool else []
        if capacity == "reserved":
            covered = float(sum(int(o.inputs.get("instanceCount", 0)) for o in reservations))
        label = types[0] if len(types) == 1 else f"{types[0]} +{len(types) - 1}"
        if covered:
            extra = nodes.map(lambda n: max(0.0, n - covered))
            od_key = f"ec2/on-demand/{types[0]}"
            od = self.cat.usd(od_key)
            names = ", ".join(o.name for o in reservations)
            self.add(r, "instances", f"{label} on-demand, beyond the reservation",
                     "hour", extra.map(lambda n: n * self.hours), [od_key],
                     Range.of(od) if od is not None else None,
                     note=f"{covered:g} node(s) billed with capacity reservation {names}")
        else:
            detail = f"{label} {capacity}{' (' + how + ')' if how else ''}"
            self.add(r, "instances", detail, "hour", nodes.map(lambda n: n * self.hours),
                     keys, node_hourly,
                     note="" if node_hourly is not None or keys else how)
        self._root_volumes(r, nodes)
        is_gpu = any(instance_catalog().ec2[t].gpus for t in types
                     if t in instance_catalog().ec2)
        if is_gpu and pool and pool != "system":
            gpus = min((instance_catalog().ec2[t].gpus for t in types
                        if t in instance_catalog().ec2), default=0)
            self.pools.append(PoolCost(pool, capacity, types, nodes, node_hourly, gpus))

    def _root_volumes(self, r: Resource, nodes: Range) -> None:
        template = self.templates.get(r.name)
        if template is None:
            lt = r.inputs.get("launchTemplate") or {}
            template_id = str(lt.get("id", ""))
            template = next((t for name, t in self.templates.items()
                             if template_id in (f"{name}-id", name)), None)
        volumes = []
        if template is not None:
            for mapping in template.inputs.get("blockDeviceMappings") or []:
                ebs = mapping.get("ebs") or {}
                volumes.append((ebs.get("volumeType", "gp2"), float(ebs.get("volumeSize", 0))))
        elif r.inputs.get("diskSize"):
            volumes.append(("unknown", float(r.inputs["diskSize"])))
        for volume_type, size in volumes:
            key = f"ebs/storage/{volume_type}"
            self.add(r, f"storage-{volume_type}", f"root volume {size:g} GB {volume_type} per node",
                     "gb-month", nodes.map(lambda n, s=size: n * s), [key])

    def capacity_reservation(self, r: Resource) -> None:
        count = float(r.inputs.get("instanceCount", 0))
        instance_type = r.inputs.get("instanceType", "")
        pool = (r.inputs.get("tags") or {}).get("aiinfra.io/pool")
        pool_config = self.pool_configs.get(pool) if pool else None
        if pool_config is not None and pool_config.capacity == "reserved":
            term = pool_config.reserved_term
            key = f"ec2/reserved-{term}/{instance_type}"
            how = f"reserved {term} no upfront"
        else:  # a reservation without reserved instances is billed at the on-demand rate
            key = f"ec2/on-demand/{instance_type}"
            how = "on-demand rate"
        self.add(r, "instances", f"{count:g} × {instance_type} all month, {how}",
                 "hour", self.monthly_hours(count), [key])

    # network
    def nat_gateway(self, r: Resource) -> None:
        self.add(r, "hours", "NAT gateway", "hour", self.monthly_hours(),
                 ["vpc/nat-gateway/hour"])
        gb = self.usage_value(r, "monthly_data_processed_gb")
        self.add(r, "data", "data processed", "gb", Range.of(gb) if gb is not None else None,
                 ["vpc/nat-gateway/data"], usage_key="monthly_data_processed_gb")

    def eip(self, r: Resource) -> None:
        self.add(r, "hours", "public IPv4 address", "hour", self.monthly_hours(),
                 ["vpc/public-ipv4/hour"])

    def vpc_endpoint(self, r: Resource) -> None:
        kind = r.inputs.get("vpcEndpointType", "Gateway")
        service = str(r.inputs.get("serviceName", "")).removeprefix(
            f"com.amazonaws.{self.graph.config.region}.")
        if kind == "Gateway":
            return  # S3 and DynamoDB gateway endpoints are free
        if kind != "Interface":
            self.unpriced(r, f"{kind} endpoint", f"no price for {kind} endpoints")
            return
        azs = max(1, len(r.inputs.get("subnetIds") or []))
        self.add(r, "hours", f"interface endpoint {service}, {azs} AZ", "hour",
                 self.monthly_hours(azs), ["vpc/interface-endpoint/hour"])
        gb = self.usage_value(r, "monthly_data_processed_gb")
        if gb is not None:
            self.add(r, "data", "data processed", "gb", Range.of(gb),
                     ["vpc/interface-endpoint/data"])

    def load_balancer(self, r: Resource) -> None:
        kind = r.inputs.get("loadBalancerType", "application")
        self.add(r, "hours", f"{kind} load balancer (no LCUs)", "hour",
                 self.monthly_hours(), [f"elb/{kind}/hour"])

    # data
    def rds_instance(self, r: Resource) -> None:
        engine = str(r.inputs.get("engine", "postgres"))
        engine_key = {"postgres": "postgres", "mysql": "mysql", "mariadb": "mariadb"}.get(engine)
        instance_class = r.inputs.get("instanceClass", "")
        multi = bool(r.inputs.get("multiAz"))
        deployment = "Multi-AZ (2× Single-AZ)" if multi else "Single-AZ"
        key = f"rds/{engine_key or engine}/{instance_class}"
        single = self.cat.usd(key)
        self.add(r, "instances", f"{instance_class} {engine} {deployment}", "hour",
                 self.monthly_hours(2 if multi else 1), [key],
                 Range.of(single) if single is not None else None,
                 note="" if single is not None else f"no price in the catalogue for {key}")
        storage_type = r.inputs.get("storageType")
        size = float(r.inputs.get("allocatedStorage", 0))
        storage_key = f"rds/storage/{storage_type}{'-multi-az' if multi else ''}"
        self.add(r, "storage", f"{size:g} GB {storage_type or 'storage'}"
                 f"{' Multi-AZ' if multi else ''}", "gb-month", Range.of(size), [storage_key])

    def _cache_nodes(self, r: Resource, nodes: int, node_type: str) -> None:
        engine = str(r.inputs.get("engine", "redis")).lower()
        key = f"elasticache/{engine}/{node_type}"
        self.add(r, "nodes", f"{nodes} × {node_type} ({engine})", "hour",
                 self.monthly_hours(nodes), [key])

    def cache_group(self, r: Resource) -> None:
        if r.inputs.get("numNodeGroups"):
            nodes = int(r.inputs["numNodeGroups"]) * (int(r.inputs.get("replicasPerNodeGroup",
                                                                          0)) + 1)
        else:
            nodes = int(r.inputs.get("numCacheClusters", 1))
        self._cache_nodes(r, nodes, r.inputs.get("nodeType", ""))

    def cache_cluster(self, r: Resource) -> None:
        if r.inputs.get("replicationGroupId"):
            return  # a member of a replication group, priced there
        self._cache_nodes(r, int(r.inputs.get("numCacheNodes", 1)), r.inputs.get("nodeType", ""))

    def bucket(self, r: Resource) -> None:
        gb = self.usage_value(r, "storage_gb")
        self.add(r, "storage", "S3 Standard storage", "gb-month",
                 Range.of(gb) if gb is not None else None, ["s3/storage/standard"],
                 usage_key="storage_gb")

    def efs(self, r: Resource) -> None:
        gb = self.usage_value(r, "storage_gb")
        self.add(r, "storage", "EFS Standard storage", "gb-month",
                 Range.of(gb) if gb is not None else None, ["efs/storage/standard"],
                 usage_key="storage_gb")
        if r.inputs.get("throughputMode") in ("elastic", "provisioned"):
            self.unpriced(r, f"EFS {r.inputs['throughputMode']} throughput", "no price in the "
                          "catalogue for EFS throughput (reads and writes)", item="throughput")

    def ebs_type(self, storage_class: str | None) -> str | None:
        """The EBS volume type behind a storage class; None when it is not EBS (e.g. EFS)."""
        spec = self.storage_classes.get(storage_class or "")
        if spec is None:
            return storage_class or "unknown"
        if spec.get("provisioner") in ("ebs.csi.aws.com", "kubernetes.io/aws-ebs"):
            return (spec.get("parameters") or {}).get("type", "gp3")
        return None

    def kms_key(self, r: Resource) -> None:
        self.add(r, "key", "KMS key (no requests)", "month",
                 Range.of(1.0), ["kms/key/month"])

    def log_group(self, r: Resource) -> None:
        gb = self.usage_value(r, "monthly_data_ingested_gb")
        self.add(r, "ingest", "log data ingested", "gb",
                 Range.of(gb) if gb is not None else None, ["cloudwatch/logs/ingest"],
                 usage_key="monthly_data_ingested_gb")
        stored = self.usage_value(r, "storage_gb")
        if stored is not None:
            self.add(r, "storage", "log data stored", "gb-month", Range.of(stored),
                     ["cloudwatch/logs/storage"])

    def ecr_repository(self, r: Resource) -> None:
        gb = self.usage_value(r, "storage_gb")
        self.add(r, "storage", "image storage", "gb-month",
                 Range.of(gb) if gb is not None else None, ["ecr/storage/month"],
                 usage_key="storage_gb")

    def sqs_queue(self, r: Resource) -> None:
        if r.inputs.get("fifoQueue"):
            self.unpriced(r, "FIFO queue requests", "no price for FIFO queue requests")
            return
        requests = self.usage_value(r, "monthly_requests")
        self.add(r, "requests", "standard queue requests", "1m-requests",
                 Range.of(requests / 1e6) if requests is not None else None,
                 ["sqs/standard/requests"], usage_key="monthly_requests")

    def ec2_instance(self, r: Resource) -> None:
        instance_type = r.inputs.get("instanceType", "")
        self.add(r, "instances", f"{instance_type} (on-demand)", "hour", self.monthly_hours(),
                 [f"ec2/on-demand/{instance_type}"])

    def ebs_volume(self, r: Resource) -> None:
        volume_type = r.inputs.get("type", "gp3")
        size = float(r.inputs.get("size", 0))
        self.add(r, "storage", f"{size:g} GB {volume_type}", "gb-month", Range.of(size),
                 [f"ebs/storage/{volume_type}"])

    # Kubernetes objects that create AWS resources
    def helm_release(self, r: Resource) -> None:
        if r.inputs.get("chart") != "kube-prometheus-stack":
            return
        values = r.inputs.get("values") or {}
        for part, spec_key in (("prometheus", "prometheusSpec"),
                               ("alertmanager", "alertmanagerSpec")):
            spec = (values.get(part) or {}).get(spec_key) or {}
            claim = ((spec.get("storageSpec") or spec.get("storage") or {})
                     .get("volumeClaimTemplate") or {}).get("spec") or {}
            size = _gib(((claim.get("resources") or {}).get("requests") or {}).get("storage"))
            if size is None:
                continue
            replicas = float(spec.get("replicas", 1))
            volume_type = self.ebs_type(claim.get("storageClassName", "gp3"))
            if volume_type is None:
                continue
            self.add(r, f"{part}-storage",
                     f"{part} volume {size:g} GB {volume_type} × {replicas:g}",
                     "gb-month", Range.of(size * replicas), [f"ebs/storage/{volume_type}"])

    def k8s_service(self, r: Resource) -> None:
        spec = r.inputs.get("spec") or {}
        if spec.get("type") != "LoadBalancer":
            return
        annotations = ((r.inputs.get("metadata") or {}).get("annotations") or {})
        kind = annotations.get("service.beta.kubernetes.io/aws-load-balancer-type", "")
        if kind in ("nlb", "external", "nlb-ip"):
            self.add(r, "hours", "network load balancer (no LCUs)", "hour",
                     self.monthly_hours(), ["elb/network/hour"])
        else:
            self.unpriced(r, "classic load balancer", "no price for classic load balancers")

    def k8s_ingress(self, r: Resource) -> None:
        spec = r.inputs.get("spec") or {}
        annotations = ((r.inputs.get("metadata") or {}).get("annotations") or {})
        if spec.get("ingressClassName") == "alb" or \
                annotations.get("kubernetes.io/ingress.class") == "alb":
            self.add(r, "hours", "application load balancer (no LCUs)", "hour",
                     self.monthly_hours(), ["elb/application/hour"])

    def k8s_pvc(self, r: Resource) -> None:
        spec = r.inputs.get("spec") or {}
        size = _gib(((spec.get("resources") or {}).get("requests") or {}).get("storage"))
        volume_type = self.ebs_type(spec.get("storageClassName"))
        if volume_type is None:
            return  # not an EBS volume (an EFS claim is priced with its file system)
        if size is None:
            self.unpriced(r, "persistent volume", "no storage request")
            return
        self.add(r, "storage", f"{size:g} GB {volume_type}", "gb-month", Range.of(size),
                 [f"ebs/storage/{volume_type}"])


def estimate(graph: Graph, *, catalogue: Catalogue | None = None,
             usage: Usage | None = None) -> Report:
    """Price every resource of ``graph`` (a pure function of the graph, prices and usage)."""
    catalogue = catalogue or load_catalogue(graph.config.region)
    pricer = _Pricer(graph, catalogue, usage)
    pricer.price()
    # The mocks register resources in no fixed order: sort for stable output.
    rank = {name: i for i, name in enumerate(COMPONENT_ORDER)}
    pricer.lines.sort(key=lambda li: (rank.get(li.component, len(rank)), li.component,
                                      li.name))
    pools = {p.name: i for i, p in enumerate(graph.config.gpu_pools)}
    pricer.pools.sort(key=lambda p: (pools.get(p.name, len(pools)), p.name))
    dates = sorted({p.date.isoformat() for p in catalogue.prices.values()})
    return Report(graph.stack, catalogue.region, catalogue.hours_per_month, pricer.lines,
                  pricer.pools, budget_usd=graph.config.budget_monthly_usd,
                  usage_source=usage.source if usage else None,
                  catalogue_date=dates[-1] if dates else None,
                  name_prefix=graph.config.name_prefix + "-")


__all__ = ["FREE_TYPES", "LineItem", "PoolCost", "Range", "Report", "estimate"]
