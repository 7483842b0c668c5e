"""Data stores: RDS PostgreSQL (PGTune parameter group) and ElastiCache Redis."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from infra.catalog import catalog
from infra.components.base import child
from infra.config import Cache, Database
from infra.pgtune import pgtune, rds_parameters


@dataclass(frozen=True)
class DataArgs:
    name: str
    vpc_id: pulumi.Input[str]
    subnet_ids: list[pulumi.Input[str]]
    client_security_group_id: pulumi.Input[str]
    database: Database
    cache: Cache
    production: bool
    tags: dict[str, str]


def _ingress_from(name: str, vpc_id, port: int, source_sg, tags, parent) -> aws.ec2.SecurityGroup:
    return aws.ec2.SecurityGroup(
        name, vpc_id=vpc_id, description=f"port {port} from the EKS cluster only",
        ingress=[aws.ec2.SecurityGroupIngressArgs(
            protocol="tcp", from_port=port, to_port=port, security_groups=[source_sg],
            description="from cluster nodes and pods")],
        egress=[], tags={**tags, "Name": name}, opts=child(parent))


class Postgres(pulumi.ComponentResource):
    def __init__(self, args: DataArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aiinfra:data:Postgres", f"{args.name}-database", None, opts)
        db, tags = args.database, args.tags
        spec = catalog().rds[db.instance_class]
        family = f"postgres{db.engine_version.split('.')[0]}"
        self.parameter_group = aws.rds.ParameterGroup(
            f"{args.name}-postgres", family=family,
            description=f"PGTune ({db.workload}) for {db.instance_class}: {spec.vcpu} vCPU, "
                        f"{spec.memory_gib:g} GiB",
            parameters=[aws.rds.ParameterGroupParameterArgs(
                name=p.name, value=p.value, apply_method=p.apply_method)
                for p in rds_parameters(pgtune(spec.vcpu, spec.memory_gib, db.workload))],
            tags=tags, opts=child(self))
        subnets = aws.rds.SubnetGroup(f"{args.name}-postgres", subnet_ids=args.subnet_ids,
                                      tags=tags, opts=child(self))
        security_group = _ingress_from(f"{args.name}-postgres", args.vpc_id, 5432,
                                       args.client_security_group_id, tags, self)
        # A Pulumi-held secret, so the serving pods get it without another controller.
        self.password = random.RandomPassword(f"{args.name}-postgres-password", length=40,
                                              special=False, opts=child(self))
        # A destroyed stack leaves its final snapshot; the next incarnation gets a new
        # suffix (this id goes with the stack), so its destroy does not collide with it.
        snapshot_suffix = random.RandomId(f"{args.name}-final-snapshot", byte_length=4,
                                          opts=child(self))
        self.instance = aws.rds.Instance(
            f"{args.name}-postgres", identifier=f"{args.name}-postgres", engine="postgres",
            engine_version=db.engine_version, instance_class=db.instance_class,
            allocated_storage=db.allocated_storage_gib,
            max_allocated_storage=db.max_allocated_storage_gib, storage_type="gp3",
            storage_encrypted=True, db_name="aiinfra", username="aiinfra",
            password=self.password.result, parameter_group_name=self.parameter_group.name,
            db_subnet_group_name=subnets.name, vpc_security_group_ids=[security_group.id],
            publicly_accessible=False, multi_az=db.multi_az,
            backup_retention_period=db.backup_retention_days,
            backup_window="03:00-04:00", maintenance_window="sun:04:30-sun:05:30",
            deletion_protection=db.deletion_protection,
            skip_final_snapshot=not args.production,
            final_snapshot_identifier=pulumi.Output.concat(
                f"{args.name}-postgres-final-", snapshot_suffix.hex) if args.production else None,
            performance_insights_enabled=db.performance_insights,
            performance_insights_retention_period=7 if db.performance_insights else None,
            auto_minor_version_upgrade=True, copy_tags_to_snapshot=True,
            apply_immediately=not args.production,
            # RDS applies minor upgrades itself: a later `up` must not send a downgrade.
            # Major upgrades are deliberate: change engine_version and drop this for that up.
            tags=tags, opts=child(self, ignore_changes=["engineVersion"]))
        self.endpoint = self.instance.endpoint
        self.url = pulumi.Output.secret(pulumi.Output.all(
            self.password.result, self.instance.address).apply(
            lambda v: f"postgresql://aiinfra:{v[0]}@{v[1]}:5432/aiinfra?sslmode=require"))
        self.register_outputs({"endpoint": self.endpoint})


class Redis(pulumi.ComponentResource):
    def __init__(self, args: DataArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aiinfra:data:Redis", f"{args.name}-cache", None, opts)
        cache, tags = args.cache, args.tags
        major = cache.engine_version.split(".")[0]
        parameters = aws.elasticache.ParameterGroup(
            f"{args.name}-redis", family=f"redis{major}",
            description="prediction cache: evict least recently used keys when full",
            parameters=[aws.elasticache.ParameterGroupParameterArgs(
                name="maxmemory-policy", value="allkeys-lru")],
            tags=tags, opts=child(self))
        subnets = aws.elasticache.SubnetGroup(f"{args.name}-redis", subnet_ids=args.subnet_ids,
                                              tags=tags, opts=child(self))
        security_group = _ingress_from(f"{args.name}-redis", args.vpc_id, 6379,
                                       args.client_security_group_id, tags, self)
        self.auth_token = random.RandomPassword(f"{args.name}-redis-auth", length=48,
                                                special=False, opts=child(self))
        failover = cache.replicas >= 1
        self.group = aws.elasticache.ReplicationGroup(
            f"{args.name}-redis", replication_group_id=f"{args.name}-redis",
            description="aiinfra prediction cache", engine="redis",
            engine_version=cache.engine_version, node_type=cache.node_type,
            num_cache_clusters=1 + cache.replicas, parameter_group_name=parameters.name,
            subnet_group_name=subnets.name, security_group_ids=[security_group.id], port=6379,
            at_rest_encryption_enabled=True, transit_encryption_enabled=True,
            auth_token=self.auth_token.result, automatic_failover_enabled=failover,
            multi_az_enabled=failover and args.production,
            snapshot_retention_limit=7 if args.production else 0,
            apply_immediately=not args.production, tags=tags, opts=child(self))
        self.endpoint = self.group.primary_endpoint_address
        self.url = pulumi.Output.secret(pulumi.Output.all(
            self.auth_token.result, self.endpoint).apply(
            lambda v: f"rediss://:{v[0]}@{v[1]}:6379/0"))
        self.register_outputs({"endpoint": self.endpoint})
