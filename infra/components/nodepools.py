"""Node pools: a small on-demand system pool and the GPU pools, with autoscaling and
spot-interruption handling.

Every pool gets a launch template with IMDSv2 (hop limit 2, so pods behind the node can still
reach it) and encrypted gp3 volumes. GPU pools carry the ``nvidia.com/gpu`` taint. The cluster
autoscaler's priority expander fills reserved pools first (already paid for), then spot, then
on-demand; aws-node-termination-handler drains nodes on spot interruption notices (queue mode).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra.components.base import child, k8s_child
from infra.components.cluster import Cluster
from infra.config import GpuPool, SystemPool

AMI_TYPES = {"al2023-nvidia": "AL2023_x86_64_NVIDIA",
             "bottlerocket-nvidia": "BOTTLEROCKET_x86_64_NVIDIA"}
CAPACITY_TYPES = {"spot": "SPOT", "on-demand": "ON_DEMAND", "reserved": "ON_DEMAND"}
# Higher fills first: reserved capacity is paid for either way, spot is the cheapest to add.
EXPANDER_PRIORITY = {"reserved": 100, "spot": 50, "on-demand": 10}
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}

CLUSTER_AUTOSCALER_CHART = "9.46.6"
NTH_CHART = "0.27.0"


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


def node_group_name(cluster: str, pool: GpuPool) -> str:
    return f"{cluster}-gpu-{pool.name}-{pool.capacity}"


class NodePools(pulumi.ComponentResource):
    def __init__(self, args: NodePoolsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aiinfra:nodes:NodePools", f"{args.name}-nodes", None, opts)
        self.args = args
        cluster = args.cluster
        self.system = self._node_group(
            f"{args.name}-system", instance_types=[args.system.instance_type],
            capacity_type="ON_DEMAND", ami_type="AL2023_x86_64_STANDARD",
            scaling=args.system, disk_gib=args.system.disk_gib,
            labels={"aiinfra.io/pool": "system"}, taints=[], subnet_ids=args.subnet_ids)
        self.gpu_groups: dict[str, aws.eks.NodeGroup] = {}
        for pool in args.gpu_pools:
            subnet_ids = args.subnet_ids
            reservation = None
            if pool.create_capacity_reservation:
                # A capacity reservation lives in one AZ: the pool is pinned to it.
                reservation = aws.ec2.CapacityReservation(
                    f"{args.name}-{pool.name}-odcr", instance_type=pool.instance_types[0],
                    instance_platform="Linux/UNIX", availability_zone=args.zones[0],
                    instance_count=max(pool.desired_size, 1), instance_match_criteria="targeted",
                    end_date_type="unlimited", tags={**args.tags, "aiinfra.io/pool": pool.name},
                    opts=child(self))
                subnet_ids = args.subnet_ids[:1]
            labels = {"aiinfra.io/pool": pool.name, "aiinfra.io/capacity": pool.capacity,
                      "nvidia.com/gpu.present": "true", **pool.labels}
            self.gpu_groups[pool.name] = self._node_group(
                node_group_name(cluster.name, pool), instance_types=pool.instance_types,
                capacity_type=CAPACITY_TYPES[pool.capacity], ami_type=AMI_TYPES[pool.ami_family],
                scaling=pool, disk_gib=pool.disk_gib, labels=labels, taints=[GPU_TAINT],
                subnet_ids=subnet_ids, reservation=reservation,
                extra_tags={"aiinfra.io/capacity": pool.capacity,
                            "aiinfra.io/pool": pool.name})
        self._cluster_autoscaler()
        self._termination_handler()
        self.register_outputs({"gpuNodeGroups": {n: g.node_group_name
                                                 for n, g in self.gpu_groups.items()}})

    def _node_group(self, name: str, *, instance_types: list[str], capacity_type: str,
                    ami_type: str, scaling, disk_gib: int, labels: dict[str, str],
                    taints: list[dict], subnet_ids, reservation=None,
                    extra_tags: dict[str, str] | None = None) -> aws.eks.NodeGroup:
        tags = {**self.args.tags, **(extra_tags or {})}
        device = "/dev/xvdb" if ami_type.startswith("BOTTLEROCKET") else "/dev/xvda"
        template = aws.ec2.LaunchTemplate(
            name,
            metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                http_endpoint="enabled", http_tokens="required", http_put_response_hop_limit=2),
            block_device_mappings=[aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                device_name=device,
                ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                    volume_size=disk_gib, volume_type="gp3", encrypted="true",
                    delete_on_termination="true"))],
            capacity_reservation_specification=(
                {"capacity_reservation_target": {"capacity_reservation_id": reservation.id}}
                if reservation is not None else None),
            tag_specifications=[aws.ec2.LaunchTemplateTagSpecificationArgs(
                resource_type=kind, tags=tags) for kind in ("instance", "volume")],
            tags=tags, opts=child(self))
        return aws.eks.NodeGroup(
            name, cluster_name=self.args.cluster.cluster.name, node_group_name=name,
            node_role_arn=self.args.cluster.node_role.arn, subnet_ids=subnet_ids,
            instance_types=instance_types, capacity_type=capacity_type, ami_type=ami_type,
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                min_size=scaling.min_size, desired_size=scaling.desired_size,
                max_size=scaling.max_size),
            update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable_percentage=25),
            launch_template=aws.eks.NodeGroupLaunchTemplateArgs(
                id=template.id, version=template.latest_version.apply(str)),
            labels=labels,
            taints=[aws.eks.NodeGroupTaintArgs(**t) for t in taints],
            tags=tags,
            # The autoscaler owns desired size once the group exists. The node role's
            # policies outlive the group, so EKS can still drain and delete its nodes.
            opts=child(self, ignore_changes=["scalingConfig.desiredSize"],
                       depends_on=self.args.cluster.node_policies))

    def _cluster_autoscaler(self) -> None:
        args, cluster = self.args, self.args.cluster
        role = cluster.irsa_role(
            f"{args.name}-cluster-autoscaler", "kube-system", "cluster-autoscaler",
            policy={"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Resource": "*", "Action": [
                    "autoscaling:DescribeAutoScalingGroups",
                    "autoscaling:DescribeAutoScalingInstances",
                    "autoscaling:DescribeLaunchConfigurations",
                    "autoscaling:DescribeScalingActivities",
                    "autoscaling:DescribeTags", "ec2:DescribeImages",
                    "ec2:DescribeInstanceTypes", "ec2:DescribeLaunchTemplateVersions",
                    "ec2:GetInstanceTypesFromInstanceRequirements", "eks:DescribeNodegroup"]},
                {"Effect": "Allow", "Resource": "*",
                 "Action": ["autoscaling:SetDesiredCapacity",
                            "autoscaling:TerminateInstanceInAutoScalingGroup"],
                 "Condition": {"StringEquals": {
                     f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster.name}": "owned"}}}]},
            parent=self)
        priorities: dict[str, list[str]] = {}
        for pool in args.gpu_pools:
            priorities.setdefault(str(EXPANDER_PRIORITY[pool.capacity]), []).append(
                f".*{node_group_name(cluster.name, pool)}.*")
        priorities.setdefault("1", []).append(".*")
        k8s.helm.v3.Release(
            f"{args.name}-cluster-autoscaler", name="cluster-autoscaler",
            namespace="kube-system", chart="cluster-autoscaler",
            version=CLUSTER_AUTOSCALER_CHART,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(
                repo="https://kubernetes.github.io/autoscaler"),
            values={
                "cloudProvider": "aws", "awsRegion": args.region,
                "autoDiscovery": {"clusterName": cluster.name},
                "rbac": {"serviceAccount": {"name": "cluster-autoscaler", "annotations": {
                    "eks.amazonaws.com/role-arn": role.arn}}},
                "expanderPriorities": priorities,
                "extraArgs": {
                    "expander": "priority",
                    "balance-similar-node-groups": True,
                    "skip-nodes-with-system-pods": False,
                    # The guide's delays: no scale-down for 10 min after a scale-up, and a
                    # node must be unneeded for 10 min before it goes.
                    "scale-down-delay-after-add": "10m",
                    "scale-down-unneeded-time": "10m",
                },
                "nodeSelector": {"aiinfra.io/pool": "system"},
                "resources": {"requests": {"cpu": "100m", "memory": "300Mi"},
                              "limits": {"memory": "600Mi"}},
            },
            opts=k8s_child(self, cluster.provider, depends_on=[self.system]))

    def _termination_handler(self) -> None:
        args, cluster = self.args, self.args.cluster
        queue = aws.sqs.Queue(f"{args.name}-interruptions", message_retention_seconds=300,
                              sqs_managed_sse_enabled=True, tags=args.tags, opts=child(self))
        aws.sqs.QueuePolicy(
            f"{args.name}-interruptions", queue_url=queue.url,
            policy=queue.arn.apply(lambda arn: json.dumps({
                "Version": "2012-10-17", "Statement": [{
                    "Effect": "Allow", "Action": "sqs:SendMessage", "Resource": arn,
                    "Principal": {"Service": ["events.amazonaws.com", "sqs.amazonaws.com"]}}]})),
            opts=child(self))
        events = {
            "spot-interruption": {"source": ["aws.ec2"],
                                  "detail-type": ["EC2 Spot Instance Interruption Warning"]},
            "rebalance": {"source": ["aws.ec2"],
                          "detail-type": ["EC2 Instance Rebalance Recommendation"]},
            "state-change": {"source": ["aws.ec2"],
                             "detail-type": ["EC2 Instance State-change Notification"]},
            "asg-lifecycle": {"source": ["aws.autoscaling"],
                              "detail-type": ["EC2 Instance-terminate Lifecycle Action"]},
        }
        for key, pattern in events.items():
            rule = aws.cloudwatch.EventRule(f"{args.name}-{key}",
                                            event_pattern=json.dumps(pattern), tags=args.tags,
                                            opts=child(self))
            aws.cloudwatch.EventTarget(f"{args.name}-{key}", rule=rule.name, arn=queue.arn,
                                       opts=child(self))
        role = cluster.irsa_role(
            f"{args.name}-termination-handler", "kube-system", "aws-node-termination-handler",
            policy={"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Resource": "*", "Action": [
                    "autoscaling:CompleteLifecycleAction",
                    "autoscaling:DescribeAutoScalingInstances",
                    "autoscaling:DescribeTags", "ec2:DescribeInstances", "sqs:DeleteMessage",
                    "sqs:ReceiveMessage"]}]},
            parent=self)
        k8s.helm.v3.Release(
            f"{args.name}-termination-handler", name="aws-node-termination-handler",
            namespace="kube-system", chart="oci://public.ecr.aws/aws-ec2/helm/aws-node-termination-handler",
            version=NTH_CHART,
            values={"enableSqsTerminationDraining": True, "queueURL": queue.url,
                    "awsRegion": args.region,
                    "serviceAccount": {"name": "aws-node-termination-handler", "annotations": {
                        "eks.amazonaws.com/role-arn": role.arn}},
                    "nodeSelector": {"aiinfra.io/pool": "system"}},
            opts=k8s_child(self, cluster.provider, depends_on=[self.system]))
