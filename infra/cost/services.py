"""Pricing of managed services: data stores (RDS, ElastiCache, S3, EFS), KMS keys, CloudWatch
log groups, ECR repositories and SQS queues.
"""

from __future__ import annotations

from infra.cost.model import Range
from infra.cost.pricer import PricerBase
from infra.render import Resource


class ServicePricer(PricerBase):
    """Prices managed data stores and the usage-billed services around them."""

    def rds_instance(self, r: Resource) -> None:
        """An instance-hour at the deployment's own listed price: AWS lists Multi-AZ (one
        standby) apart from Single-AZ, and it is not always twice as much."""
        engine = str(r.inputs.get("engine", "postgres"))
        instance_class = r.inputs.get("instanceClass", "")
        multi = bool(r.inputs.get("multiAz"))
        deployment = "Multi-AZ" if multi else "Single-AZ"
        key = f"rds/{engine}{'-multi-az' if multi else ''}/{instance_class}"
        self.add(r, "instances", f"{instance_class} {engine} {deployment}", "hour",
                 self.monthly_hours(), [key])
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
        self.add_usage(r, "storage", "S3 Standard storage", "gb-month", "s3/storage/standard",
                       "storage_gb")

    def efs(self, r: Resource) -> None:
        self.add_usage(r, "storage", "EFS Standard storage", "gb-month", "efs/storage/standard",
                       "storage_gb")
        mode = r.inputs.get("throughputMode")
        if mode == "elastic":  # billed per GB transferred, reads and writes apart
            for direction, usage_key in (("read", "monthly_read_gb"),
                                         ("write", "monthly_write_gb")):
                self.add_usage(r, f"throughput-{direction}",
                               f"EFS elastic throughput, data {direction}", "gb",
                               f"efs/elastic-throughput/{direction}", usage_key)
        elif mode == "provisioned":
            self.unpriced(r, "EFS provisioned throughput", "no price in the catalogue for "
                          "EFS provisioned throughput (MB/s-month)", item="throughput")

    def kms_key(self, r: Resource) -> None:
        self.add(r, "key", "KMS key (no requests)", "month",
                 Range.of(1.0), ["kms/key/month"])

    def log_group(self, r: Resource) -> None:
        self.add_usage(r, "ingest", "log data ingested", "gb", "cloudwatch/logs/ingest",
                       "monthly_data_ingested_gb")
        stored = self.usage_value(r, "storage_gb")
        if stored is not None:
            self.add(r, "storage", "log data stored", "gb-month", Range.of(stored),
                     ["cloudwatch/logs/storage"])

    def ecr_repository(self, r: Resource) -> None:
        self.add_usage(r, "storage", "image storage", "gb-month", "ecr/storage/month",
                       "storage_gb")

    def sqs_queue(self, r: Resource) -> None:
        if r.inputs.get("fifoQueue"):
            self.unpriced(r, "FIFO queue requests", "no price for FIFO queue requests")
            return
        self.add_usage(r, "requests", "standard queue requests", "1m-requests",
                       "sqs/standard/requests", "monthly_requests", per_unit=1e6)

