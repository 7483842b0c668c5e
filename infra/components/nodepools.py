"""Node capacity: a small on-demand system node group, and the GPU pools on Karpenter v1.

The system pool is an EKS managed node group: Karpenter, CoreDNS, monitoring and KEDA run
there. Each GPU pool in the stack config becomes one Karpenter ``NodePool`` and its
``EC2NodeClass`` (``gpu_pool_objects``, a pure function of the pool): one GPU shape per pool,
the ``nvidia.com/gpu`` taint, IMDSv2 with hop limit 1 (every workload uses IRSA), encrypted
gp3 root volumes, and consolidation that never evicts a busy GPU node (``WhenEmpty``).
NodePool weights fill reserved capacity first (paid for either way), then spot, then
on-demand. Spot interruptions, rebalance recommendations, state changes and scheduled
maintenance reach Karpenter through its SQS interruption queue.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra.catalog import catalog
from infra.components.base import child, k8s_child
from infra.components.cluster import Cluster, assume_role_policy
from infra.config import GpuPool, SystemPool

KARPENTER_CHART = "1.14.0"
KARPENTER_NAMESPACE = "kube-system"
KARPENTER_SERVICE_ACCOUNT = "karpenter"
# Higher fills first: reserved capacity is paid for either way, spot is the cheapest to add.
WEIGHTS = {"reserved": 100, "spot": 50, "on-demand": 10}
# Reserved pools fall back to on-demand when the reservation is full (a replacement node
# launched before the old one goes, during drift or expiry).
CAPACITY_TYPES = {"reserved": ["reserved", "on-demand"], "spot": ["spot"],
                  "on-demand": ["on-demand"]}
AMI_ALIASES = {"al2023-nvidia": "al2023", "bottlerocket-nvidia": "bottlerocket"}
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}
# The guide's 10 minutes before an empty node goes; nodes are replaced monthly (new AMIs).
CONSOLIDATE_AFTER = "10m"
EXPIRE_AFTER = "720h"
TERMINATION_GRACE = "1h"
NODE_POLICIES = ("AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy",
                 "AmazonEC2ContainerRegistryReadOnly", "AmazonSSMManagedInstanceCore")
INTERRUPTION_EVENTS = {
    "spot-interruption": {"source": ["aws.ec2"],
                          "detail-type": ["EC2 Spot Instance Interruption Warning"]},
    "rebalance": {"source": ["aws.ec2"], "detail-type": ["EC2 Instance Rebalance Recommendation"]},
    "state-change": {"source": ["aws.ec2"],
                     "detail-type": ["EC2 Instance State-change Notification"]},
    "scheduled-change": {"source": ["aws.health"], "detail-type": ["AWS Health Event"]},
}


@dataclass(frozen=True)
class NodePoolsArgs:
    name: str
    cluster: Cluster
    subnet_ids: list[pulumi.Input[str]]
    zones: list[str]
    system: SystemPool
    gpu_pools: list[GpuPool]
    region: str
    tags: dict[str, str]


def node_pool_name(pool: GpuPool) -> str:
    return f"gpu-{pool.name}"


def gpu_pool_objects(pool: GpuPool, *, node_role: str, subnet_ids: list,
                     security_group_id, zones: list[str], tags: dict[str, str],
                     reservation_id=None) -> tuple[dict, dict]:
    """The ``EC2NodeClass`` and ``NodePool`` specs of one GPU pool."""
    name = node_pool_name(pool)
    types = [catalog().ec2[t] for t in pool.instance_types]
    disk = {"volumeSize": f"{pool.disk_gib}Gi", "volumeType": "gp3", "encrypted": True,
            "deleteOnTermination": True}
    if pool.ami_family == "bottlerocket-nvidia":  # an OS volume, and a data volume for images
        volumes = [{"deviceName": "/dev/xvda", "ebs": {**disk, "volumeSize": "4Gi"}},
                   {"deviceName": "/dev/xvdb", "ebs": disk}]
    else:
        volumes = [{"deviceName": "/dev/xvda", "ebs": disk}]
    node_class = {
        "role": node_role,
        "amiSelectorTerms": [{"alias": f"{AMI_ALIASES[pool.ami_family]}@{pool.ami_version}"}],
        "subnetSelectorTerms": [{"id": subnet} for subnet in subnet_ids],
        "securityGroupSelectorTerms": [{"id": security_group_id}],
        "metadataOptions": {"httpEndpoint": "enabled", "httpProtocolIPv6": "disabled",
                            "httpPutResponseHopLimit": 1, "httpTokens": "required"},
        "blockDeviceMappings": volumes,
        "tags": {**tags, "aiinfra.io/pool": pool.name, "aiinfra.io/capacity": pool.capacity},
    }
    if reservation_id is not None:
        node_class["capacityReservationSelectorTerms"] = [{"id": reservation_id}]
    labels = {"aiinfra.io/pool": pool.name, "aiinfra.io/capacity": pool.capacity,
              "aiinfra.io/ami-family": pool.ami_family, "nvidia.com/gpu.present": "true",
              **pool.labels}
    node_pool = {
        "weight": WEIGHTS[pool.capacity],
        "limits": {"nvidia.com/gpu": str(pool.max_nodes * max(t.gpus for t in types)),
                   "cpu": str(pool.max_nodes * max(t.vcpu for t in types))},
        "disruption": {
            # Only empty nodes go: consolidation never evicts a model that is serving.
            "consolidationPolicy": "WhenEmpty", "consolidateAfter": CONSOLIDATE_AFTER,
            "budgets": [{"nodes": "10%"}]},
        "template": {
            "metadata": {"labels": labels},
            "spec": {
                "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass",
                                 "name": name},
                "requirements": [
                    {"key": "node.kubernetes.io/instance-type", "operator": "In",
                     "values": list(pool.instance_types)},
                    {"key": "karpenter.sh/capacity-type", "operator": "In",
                     "values": CAPACITY_TYPES[pool.capacity]},
                    {"key": "topology.kubernetes.io/zone", "operator": "In",
                     "values": list(zones)},
                    {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}],
                "taints": [GPU_TAINT],
                "expireAfter": EXPIRE_AFTER,
                # A drain that a PodDisruptionBudget holds up ends after this, so expiry and
                # drift replacements cannot hang forever.
                "terminationGracePeriod": TERMINATION_GRACE,
            },
        },
    }
    return node_class, node_pool


class NodePools(pulumi.ComponentResource):
    def __init__(self, args: NodePoolsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aiinfra:nodes:NodePools", f"{args.name}-nodes", None, opts)
        self.args = args
        self.system = self._system_group()
        self.karpenter = self._karpenter()
        self.gpu_pools: dict[str, k8s.apiextensions.CustomResource] = {}
        for pool in args.gpu_pools:
            self.gpu_pools[pool.name] = self._gpu_pool(pool)
        self.register_outputs({"gpuNodePools": {n: node_pool_name(p)
                                                for n, p in zip(self.gpu_pools,
                                                                args.gpu_pools, strict=True)}})

    def _system_group(self) -> aws.eks.NodeGroup:
        args = self.args
        name = f"{args.name}-system"
        template = aws.ec2.LaunchTemplate(
            name,
            metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                http_endpoint="enabled", http_tokens="required", http_put_response_hop_limit=1),
            block_device_mappings=[aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                device_name="/dev/xvda",
                ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                    volume_size=args.system.disk_gib, volume_type="gp3", encrypted="true",
                    delete_on_termination="true"))],
            tag_specifications=[aws.ec2.LaunchTemplateTagSpecificationArgs(
                resource_type=kind, tags=args.tags) for kind in ("instance", "volume")],
            tags=args.tags, opts=child(self))
        scaling = args.system
        return aws.eks.NodeGroup(
            name, cluster_name=args.cluster.cluster.name, node_group_name=name,
            node_role_arn=args.cluster.node_role.arn, subnet_ids=args.subnet_ids,
            instance_types=[scaling.instance_type], capacity_type="ON_DEMAND",
            ami_type="AL2023_x86_64_STANDARD",
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                min_size=scaling.min_size, desired_size=scaling.desired_size,
                max_size=scaling.max_size),
            update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable_percentage=25),
            launch_template=aws.eks.NodeGroupLaunchTemplateArgs(
                id=template.id, version=template.latest_version.apply(str)),
            labels={"aiinfra.io/pool": "system"}, tags=args.tags,
            # The node role's policies outlive the group, so EKS can still drain and delete
            # its nodes.
            opts=child(self, depends_on=args.cluster.node_policies))

    def _karpenter(self) -> k8s.helm.v3.Release:
        args, cluster = self.args, self.args.cluster
        # Karpenter's nodes get a role of their own: the managed node group's role already has
        # the access entry EKS made for it, and a second one for the same role is refused.
        self.node_role = aws.iam.Role(
            f"{args.name}-karpenter-nodes", assume_role_policy=assume_role_policy(
                "ec2.amazonaws.com"), tags=args.tags, opts=child(self))
        policies = [aws.iam.RolePolicyAttachment(
            f"{args.name}-karpenter-nodes-{policy}", role=self.node_role.name,
            policy_arn=f"arn:aws:iam::aws:policy/{policy}", opts=child(self))
            for policy in NODE_POLICIES]
        access = aws.eks.AccessEntry(
            f"{args.name}-karpenter-nodes", cluster_name=cluster.cluster.name,
            principal_arn=self.node_role.arn, type="EC2_LINUX", tags=args.tags,
            opts=child(self, depends_on=policies))
        self.queue = aws.sqs.Queue(
            f"{args.name}-interruptions", message_retention_seconds=300,
            sqs_managed_sse_enabled=True, tags=args.tags, opts=child(self))
        aws.sqs.QueuePolicy(
            f"{args.name}-interruptions", queue_url=self.queue.url,
            policy=self.queue.arn.apply(lambda arn: json.dumps({
                "Version": "2012-10-17", "Statement": [{
                    "Effect": "Allow", "Action": "sqs:SendMessage", "Resource": arn,
                    "Principal": {"Service": ["events.amazonaws.com", "sqs.amazonaws.com"]}}]})),
            opts=child(self))
        for key, pattern in INTERRUPTION_EVENTS.items():
            rule = aws.cloudwatch.EventRule(f"{args.name}-{key}",
                                            event_pattern=json.dumps(pattern), tags=args.tags,
                                            opts=child(self))
            aws.cloudwatch.EventTarget(f"{args.name}-{key}", rule=rule.name,
                                       arn=self.queue.arn, opts=child(self))
        role = cluster.irsa_role(
            f"{args.name}-karpenter", KARPENTER_NAMESPACE, KARPENTER_SERVICE_ACCOUNT,
            policy=pulumi.Output.all(self.queue.arn, self.node_role.arn,
                                     cluster.cluster.arn).apply(
                lambda v: controller_policy(args.region, cluster.name, *v)),
            parent=self)
        return k8s.helm.v3.Release(
            f"{args.name}-karpenter", name="karpenter", namespace=KARPENTER_NAMESPACE,
            chart="oci://public.ecr.aws/karpenter/karpenter", version=KARPENTER_CHART,
            values={
                "settings": {"clusterName": cluster.name,
                             "interruptionQueue": self.queue.name},
                "serviceAccount": {"name": KARPENTER_SERVICE_ACCOUNT, "annotations": {
                    "eks.amazonaws.com/role-arn": role.arn}},
                # Never on the nodes it manages.
                "nodeSelector": {"aiinfra.io/pool": "system"},
                "controller": {"resources": {"requests": {"cpu": "250m", "memory": "512Mi"},
                                             "limits": {"memory": "1Gi"}}},
            },
            opts=k8s_child(self, cluster.provider, depends_on=[self.system, access]))

    def _gpu_pool(self, pool: GpuPool) -> k8s.apiextensions.CustomResource:
        args, cluster = self.args, self.args.cluster
        zones = list(args.zones)
        subnet_ids = list(args.subnet_ids)
        reservation_id = None
        if pool.create_capacity_reservation:
            # A capacity reservation lives in one AZ: the pool launches there.
            reservation = aws.ec2.CapacityReservation(
                f"{args.name}-{pool.name}-odcr", instance_type=pool.instance_types[0],
                instance_platform="Linux/UNIX", availability_zone=zones[0],
                instance_count=pool.reserved_nodes, instance_match_criteria="targeted",
                end_date_type="unlimited", tags={**args.tags, "aiinfra.io/pool": pool.name},
                opts=child(self))
            reservation_id = reservation.id
            zones, subnet_ids = zones[:1], subnet_ids[:1]
        node_class, node_pool = gpu_pool_objects(
            pool, node_role=self.node_role.name, subnet_ids=subnet_ids,
            security_group_id=cluster.cluster.vpc_config.cluster_security_group_id,
            zones=zones, tags=args.tags, reservation_id=reservation_id)
        name = node_pool_name(pool)
        ec2_node_class = k8s.apiextensions.CustomResource(
            f"{args.name}-{name}-class", api_version="karpenter.k8s.aws/v1",
            kind="EC2NodeClass", metadata={"name": name}, spec=node_class,
            opts=k8s_child(self, cluster.provider, depends_on=[self.karpenter]))
        return k8s.apiextensions.CustomResource(
            f"{args.name}-{name}", api_version="karpenter.sh/v1", kind="NodePool",
            metadata={"name": name}, spec=node_pool,
            opts=k8s_child(self, cluster.provider, depends_on=[self.karpenter, ec2_node_class]))


def controller_policy(region: str, cluster: str, queue_arn: str, node_role_arn: str,
                      cluster_arn: str) -> str:
    """Karpenter v1's controller permissions, scoped to this cluster's tags, queue and role."""
    ec2 = f"arn:aws:ec2:{region}:*"
    owned = {f"aws:RequestTag/kubernetes.io/cluster/{cluster}": "owned",
             "aws:RequestTag/eks:eks-cluster-name": cluster}
    tagged = {f"aws:ResourceTag/kubernetes.io/cluster/{cluster}": "owned"}
    statements = [
        {"Sid": "AllowScopedEC2InstanceAccessActions", "Effect": "Allow",
         "Action": ["ec2:RunInstances", "ec2:CreateFleet"],
         "Resource": [f"arn:aws:ec2:{region}::image/*", f"arn:aws:ec2:{region}::snapshot/*",
                      f"{ec2}:security-group/*", f"{ec2}:subnet/*",
                      f"{ec2}:capacity-reservation/*"]},
        {"Sid": "AllowScopedEC2LaunchTemplateAccessActions", "Effect": "Allow",
         "Action": ["ec2:RunInstances", "ec2:CreateFleet"],
         "Resource": f"{ec2}:launch-template/*",
         "Condition": {"StringEquals": tagged,
                       "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"}}},
        {"Sid": "AllowScopedEC2InstanceActionsWithTags", "Effect": "Allow",
         "Action": ["ec2:RunInstances", "ec2:CreateFleet", "ec2:CreateLaunchTemplate"],
         "Resource": [f"{ec2}:fleet/*", f"{ec2}:instance/*", f"{ec2}:volume/*",
                      f"{ec2}:network-interface/*", f"{ec2}:launch-template/*",
                      f"{ec2}:spot-instances-request/*"],
         "Condition": {"StringEquals": owned,
                       "StringLike": {"aws:RequestTag/karpenter.sh/nodepool": "*"}}},
        {"Sid": "AllowScopedResourceCreationTagging", "Effect": "Allow",
         "Action": "ec2:CreateTags",
         "Resource": [f"{ec2}:fleet/*", f"{ec2}:instance/*", f"{ec2}:volume/*",
                      f"{ec2}:network-interface/*", f"{ec2}:launch-template/*",
                      f"{ec2}:spot-instances-request/*"],
         "Condition": {"StringEquals": {**owned, "ec2:CreateAction": [
             "RunInstances", "CreateFleet", "CreateLaunchTemplate"]},
             "StringLike": {"aws:RequestTag/karpenter.sh/nodepool": "*"}}},
        {"Sid": "AllowScopedResourceTagging", "Effect": "Allow", "Action": "ec2:CreateTags",
         "Resource": f"{ec2}:instance/*",
         "Condition": {"StringEquals": tagged,
                       "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"},
                       "ForAllValues:StringEquals": {"aws:TagKeys": [
                           "eks:eks-cluster-name", "karpenter.sh/nodeclaim", "Name"]}}},
        {"Sid": "AllowScopedDeletion", "Effect": "Allow",
         "Action": ["ec2:TerminateInstances", "ec2:DeleteLaunchTemplate"],
         "Resource": [f"{ec2}:instance/*", f"{ec2}:launch-template/*"],
         "Condition": {"StringEquals": tagged,
                       "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"}}},
        {"Sid": "AllowRegionalReadActions", "Effect": "Allow", "Resource": "*",
         "Action": ["ec2:DescribeAvailabilityZones", "ec2:DescribeCapacityReservations",
                    "ec2:DescribeImages", "ec2:DescribeInstances",
                    "ec2:DescribeInstanceTypeOfferings", "ec2:DescribeInstanceTypes",
                    "ec2:DescribeLaunchTemplates", "ec2:DescribeSecurityGroups",
                    "ec2:DescribeSpotPriceHistory", "ec2:DescribeSubnets"],
         "Condition": {"StringEquals": {"aws:RequestedRegion": region}}},
        {"Sid": "AllowSSMReadActions", "Effect": "Allow", "Action": "ssm:GetParameter",
         "Resource": f"arn:aws:ssm:{region}::parameter/aws/service/*"},
        {"Sid": "AllowPricingReadActions", "Effect": "Allow", "Action": "pricing:GetProducts",
         "Resource": "*"},
        {"Sid": "AllowInterruptionQueueActions", "Effect": "Allow",
         "Action": ["sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:ReceiveMessage"],
         "Resource": queue_arn},
        {"Sid": "AllowPassingInstanceRole", "Effect": "Allow", "Action": "iam:PassRole",
         "Resource": node_role_arn,
         "Condition": {"StringEquals": {"iam:PassedToService": ["ec2.amazonaws.com"]}}},
        {"Sid": "AllowScopedInstanceProfileCreationActions", "Effect": "Allow",
         "Action": ["iam:CreateInstanceProfile", "iam:TagInstanceProfile"],
         "Resource": "arn:aws:iam::*:instance-profile/*",
         "Condition": {"StringEquals": {
             f"aws:RequestTag/kubernetes.io/cluster/{cluster}": "owned",
             "aws:RequestTag/topology.kubernetes.io/region": region}}},
        {"Sid": "AllowScopedInstanceProfileActions", "Effect": "Allow",
         "Action": ["iam:AddRoleToInstanceProfile", "iam:RemoveRoleFromInstanceProfile",
                    "iam:DeleteInstanceProfile", "iam:TagInstanceProfile"],
         "Resource": "arn:aws:iam::*:instance-profile/*",
         "Condition": {"StringEquals": {
             f"aws:ResourceTag/kubernetes.io/cluster/{cluster}": "owned",
             "aws:ResourceTag/topology.kubernetes.io/region": region}}},
        {"Sid": "AllowInstanceProfileReadActions", "Effect": "Allow",
         "Action": "iam:GetInstanceProfile", "Resource": "arn:aws:iam::*:instance-profile/*"},
        {"Sid": "AllowInstanceProfileListActions", "Effect": "Allow",
         "Action": "iam:ListInstanceProfiles", "Resource": "*"},
        {"Sid": "AllowAPIServerEndpointDiscovery", "Effect": "Allow",
         "Action": "eks:DescribeCluster", "Resource": cluster_arn},
    ]
    return json.dumps({"Version": "2012-10-17", "Statement": statements})
