"""The whole platform for one stack: one component per concern, wired in dependency order."""

from __future__ import annotations

from pathlib import Path

import pulumi
import pulumi_aws as aws

from infra.components.admission import Admission
from infra.components.cluster import Cluster, ClusterArgs
from infra.components.data import DataArgs, Postgres, Redis
from infra.components.gpu import GpuPlumbing
from infra.components.monitoring import Monitoring, MonitoringArgs
from infra.components.network import Network, NetworkArgs
from infra.components.nodepools import NodePools, NodePoolsArgs
from infra.components.serving import ServingArgs, ServingWorkload
from infra.config import StackConfig
from infra.cost.catalogue import load_catalogue
from infra.cost.runtime import cost_dashboard, prometheus_rule_spec
from infra.zones import choose_zones


def zones(config: StackConfig) -> list[str]:
    """The stack's zones, from what the account's region offers (``infra.zones``)."""
    available = aws.get_availability_zones(
        state="available", filters=[{"name": "opt-in-status", "values": ["opt-in-not-required"]}])
    types = sorted({t for pool in config.gpu_pools for t in pool.instance_types})
    offerings = aws.ec2.get_instance_type_offerings(
        location_type="availability-zone",
        filters=[{"name": "instance-type", "values": types}])
    offered: dict[str, list[str]] = {}
    for zone, instance_type in zip(offerings.locations, offerings.instance_types, strict=True):
        offered.setdefault(zone, []).append(instance_type)
    return choose_zones(list(available.names), list(available.zone_ids), offered,
                        config.gpu_pools, config.availability_zones)


def build(config: StackConfig) -> None:
    prefix = config.name_prefix
    tags = config.all_tags
    production = config.environment == "prod"
    azs = zones(config)
    network = Network(NetworkArgs(
        name=prefix, cidr=config.vpc_cidr, zones=azs,
        nat_per_az=config.nat_gateways == "per-az", region=config.region, tags=tags,
        cluster_name=prefix))
    cluster = Cluster(ClusterArgs(
        name=prefix, version=config.cluster_version, subnet_ids=network.private_subnet_ids,
        vpc_id=network.vpc.id, public_access=config.endpoint_public_access,
        public_access_cidrs=config.endpoint_cidrs,
        private_access_cidrs=config.private_access_cidrs, tags=tags, region=config.region,
        extended_support=config.extended_support, admins=tuple(config.cluster_admins)))
    nodes = NodePools(NodePoolsArgs(
        name=prefix, cluster=cluster, subnet_ids=network.private_subnet_ids, zones=azs,
        system=config.system_pool, gpu_pools=config.gpu_pools, region=config.region,
        tags=tags))
    gp3 = cluster.addons_on_nodes([nodes.system])
    data_args = DataArgs(
        name=prefix, vpc_id=network.vpc.id, subnet_ids=network.private_subnet_ids,
        client_security_group_id=cluster.cluster.vpc_config.cluster_security_group_id,
        database=config.database, cache=config.cache, production=production, tags=tags)
    postgres = Postgres(data_args)
    redis = Redis(data_args)
    monitoring = Monitoring(MonitoringArgs(
        name=f"{prefix}-monitoring", config=config.monitoring, provider=cluster.provider,
        depends_on=[nodes.system, gp3], pod_security_version=config.cluster_version,
        # cost per inference at run time: the catalogue's node prices, written in at deploy
        cost_rules=prometheus_rule_spec(config, load_catalogue(config.region)),
        cost_dashboard=cost_dashboard()))
    # Before any workload: what the program applies is admitted by the same rules as the rest.
    admission = Admission(f"{prefix}-admission", cluster.provider, production=production)
    # dcgm-exporter renders a ServiceMonitor: its CRD comes with kube-prometheus-stack.
    GpuPlumbing(f"{prefix}-gpu", cluster.provider,
                depends_on=[nodes.system, monitoring.stack, admission],
                pod_security_version=config.cluster_version)
    serving = ServingWorkload(ServingArgs(
        name=f"{prefix}-serving", cluster=cluster, config=config.serving,
        database_url=postgres.url, redis_url=redis.url, production=production, tags=tags,
        depends_on=[nodes.system, monitoring.stack, admission],
        context_dir=Path(__file__).resolve().parent.parent, vpc_id=network.vpc.id,
        subnet_ids=network.private_subnet_ids, keda=monitoring.keda))

    pulumi.export("clusterName", cluster.cluster.name)
    pulumi.export("kubeconfig", cluster.kubeconfig)
    pulumi.export("databaseEndpoint", postgres.endpoint)
    pulumi.export("redisEndpoint", redis.endpoint)
    pulumi.export("image", serving.image)
    pulumi.export("servingUrl", serving.url)
    pulumi.export("modelBucket", serving.bucket.bucket)
