"""Price a rendered resource graph: one line per priced item, min / expected / max a month.

Three columns where autoscaling makes cost a range: **min** prices node groups at their
minimum size, **expected** at their desired size, **max** at their maximum size. Everything
else is the same in all three. Monthly = hourly × the catalogue's hours per month (730).

Each family of resources is priced in its own module: ``compute`` (the EKS control plane,
node groups and how each capacity type is priced, capacity reservations, EC2 instances and
EBS volumes), ``nodepools`` (Karpenter GPU NodePools), ``network``, ``services`` (data
stores, keys, logs, registries, queues) and ``kubernetes`` (AWS resources that Kubernetes
objects create). This module walks the graph, hands each resource to the handler of its type
and sorts the lines into a ``Report`` (``infra.cost.model``).

A resource whose price is not in the catalogue is listed as **unpriced** (no amount; the
totals exclude it and say so). A usage-based charge without a usage figure is listed with
its price and excluded. Resources that AWS does not bill for (IAM, subnets, security groups,
route tables, …) are not listed.
"""

from __future__ import annotations

from collections.abc import Callable

from infra.cost.catalogue import Catalogue, load_catalogue
from infra.cost.compute import ComputePricer
from infra.cost.kubernetes import KubernetesPricer
from infra.cost.model import LineItem, PoolCost, Range, Report
from infra.cost.network import NetworkPricer
from infra.cost.nodepools import NodePoolPricer
from infra.cost.services import ServicePricer
from infra.cost.usage import Usage
from infra.render import Graph, Resource

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
# Kubernetes objects priced in ``infra.cost.kubernetes`` (load balancers, EBS-backed volumes).


class _Pricer(ComputePricer, NodePoolPricer, NetworkPricer, ServicePricer, KubernetesPricer):
    """Every family's pricer; ``price`` hands each resource to the handler of its type."""

    def price(self) -> None:
        handlers: dict[str, Callable[[Resource], None]] = {
            "aws:eks/cluster:Cluster": self.eks_cluster,
            "aws:eks/nodeGroup:NodeGroup": self.node_group,
            "kubernetes:karpenter.sh/v1:NodePool": self.node_pool,
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


def estimate(graph: Graph, *, catalogue: Catalogue | None = None,
             usage: Usage | None = None) -> Report:
    """Price every resource of ``graph`` (a pure function of the graph, prices and usage)."""
    catalogue = catalogue or load_catalogue(graph.config.region)
    pricer = _Pricer(graph, catalogue, usage)
    pricer.price()
    # Lines grouped by component, components in the order a reader expects them.
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
                  name_prefix=graph.config.name_prefix + "-", notices=pricer.notices)


__all__ = ["FREE_TYPES", "LineItem", "PoolCost", "Range", "Report", "estimate"]
