"""EKS: control plane with KMS secrets encryption and logging, OIDC for IRSA, core add-ons."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra.components.base import child

CONTROL_PLANE_LOGS = ["api", "audit", "authenticator", "controllerManager", "scheduler"]
# Add-ons the nodes need to join (created with the cluster), and those that run pods and so
# wait for the system node group (created by `addons_on_nodes`).
NODE_ADDONS = ("vpc-cni", "kube-proxy")
POD_ADDONS = ("coredns",)
# The VPC CNI enforces NetworkPolicy only when asked to.
ADDON_CONFIGURATION = {"vpc-cni": {"enableNetworkPolicy": "true"}}


def assume_role_policy(service: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]})


@dataclass(frozen=True)
class ClusterArgs:
    name: str
    version: str
    subnet_ids: list[pulumi.Input[str]]
    vpc_id: pulumi.Input[str]
    public_access: bool
    public_access_cidrs: list[str]
    # Networks routed to the VPC (VPN, a peered runner network) that `pulumi up` and
    # kubectl reach the private endpoint from.
    private_access_cidrs: list[str]
    tags: dict[str, str]
    region: str
    extended_support: bool = False
    admins: tuple[str, ...] = ()


class Cluster(pulumi.ComponentResource):
    def __init__(self, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aiinfra:cluster:Cluster", f"{args.name}-cluster", None, opts)
        tags = args.tags
        self.name = args.name
        self.version = args.version  # also the Pod Security Standards' version
        self.tags = tags
        role = aws.iam.Role(f"{args.name}-control-plane",
                            assume_role_policy=assume_role_policy("eks.amazonaws.com"),
                            tags=tags, opts=child(self))
        control_plane_policy = aws.iam.RolePolicyAttachment(
            f"{args.name}-control-plane", role=role.name,
            policy_arn="arn:aws:iam::aws:policy/AmazonEKSClusterPolicy", opts=child(self))
        self.kms_key = aws.kms.Key(f"{args.name}-secrets",
                                   description=f"EKS secrets encryption for {args.name}",
                                   enable_key_rotation=True, deletion_window_in_days=30,
                                   tags=tags, opts=child(self))
        self.log_group = aws.cloudwatch.LogGroup(
            f"{args.name}-control-plane-logs", name=f"/aws/eks/{args.name}/cluster",
            retention_in_days=30, tags=tags, opts=child(self))
        self.cluster = aws.eks.Cluster(
            args.name, name=args.name, version=args.version, role_arn=role.arn,
            vpc_config=aws.eks.ClusterVpcConfigArgs(
                subnet_ids=args.subnet_ids, endpoint_private_access=True,
                endpoint_public_access=args.public_access,
                public_access_cidrs=args.public_access_cidrs if args.public_access else None),
            enabled_cluster_log_types=CONTROL_PLANE_LOGS,
            encryption_config=aws.eks.ClusterEncryptionConfigArgs(
                resources=["secrets"],
                provider=aws.eks.ClusterEncryptionConfigProviderArgs(
                    key_arn=self.kms_key.arn)),
            access_config=aws.eks.ClusterAccessConfigArgs(
                authentication_mode="API", bootstrap_cluster_creator_admin_permissions=True),
            # EXTENDED is EKS's default, and bills 6× the standard rate once the version
            # leaves standard support: only when the stack asks for it.
            upgrade_policy=aws.eks.ClusterUpgradePolicyArgs(
                support_type="EXTENDED" if args.extended_support else "STANDARD"),
            # EKS needs the policy until it has cleaned up what it manages (destroy, replace).
            tags=tags, opts=child(self, depends_on=[self.log_group, control_plane_policy]))
        # EKS's cluster security group admits only itself: a deployer on a routed network
        # reaches the private endpoint through these rules alone.
        for index, cidr in enumerate(args.private_access_cidrs):
            aws.vpc.SecurityGroupIngressRule(
                f"{args.name}-api-from-{index}",
                security_group_id=self.cluster.vpc_config.cluster_security_group_id,
                cidr_ipv4=cidr, ip_protocol="tcp", from_port=443, to_port=443,
                description="Kubernetes API (private endpoint) from a deployer network",
                tags=tags, opts=child(self))
        issuer = self.cluster.identities.apply(lambda ids: ids[0].oidcs[0].issuer)
        self.oidc_provider = aws.iam.OpenIdConnectProvider(
            f"{args.name}-oidc", url=issuer, client_id_lists=["sts.amazonaws.com"],
            tags=tags, opts=child(self))
        self.oidc_issuer = issuer
        self.node_role = aws.iam.Role(f"{args.name}-nodes",
                                      assume_role_policy=assume_role_policy("ec2.amazonaws.com"),
                                      tags=tags, opts=child(self))
        # Node groups wait for these, so that EKS can still drain and delete their nodes.
        self.node_policies = [
            aws.iam.RolePolicyAttachment(f"{args.name}-nodes-{policy}", role=self.node_role.name,
                                         policy_arn=f"arn:aws:iam::aws:policy/{policy}",
                                         opts=child(self))
            for policy in ("AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy",
                           "AmazonEC2ContainerRegistryReadOnly", "AmazonSSMManagedInstanceCore")]
        for addon in NODE_ADDONS:
            self.addon(addon)
        for index, principal in enumerate(args.admins):
            entry = aws.eks.AccessEntry(
                f"{args.name}-admin-{index}", cluster_name=self.cluster.name,
                principal_arn=principal, type="STANDARD", tags=tags, opts=child(self))
            aws.eks.AccessPolicyAssociation(
                f"{args.name}-admin-{index}", cluster_name=self.cluster.name,
                principal_arn=principal, access_scope={"type": "cluster"},
                policy_arn="arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy",
                opts=child(self, depends_on=[entry]))
        self.kubeconfig = pulumi.Output.secret(pulumi.Output.all(
            self.cluster.name, self.cluster.endpoint,
            self.cluster.certificate_authority.data).apply(
                lambda v: kubeconfig(*v, args.region)))
        self.provider = k8s.Provider(f"{args.name}-k8s", kubeconfig=self.kubeconfig,
                                     enable_server_side_apply=True, opts=child(self))
        self.register_outputs({"clusterName": self.cluster.name,
                               "kubeconfig": self.kubeconfig})

    def addon(self, addon: str, depends_on: list[pulumi.Resource] | None = None, *,
              name: str | None = None, parent: pulumi.Resource | None = None,
              **options) -> aws.eks.Addon:
        """An EKS add-on at the default version EKS lists for this cluster version (pinned
        at create time, moved deliberately), taking over a self-managed copy if one exists."""
        configuration = ADDON_CONFIGURATION.get(addon)
        version = aws.eks.get_addon_version_output(
            addon_name=addon, kubernetes_version=self.cluster.version, most_recent=False)
        return aws.eks.Addon(
            name or f"{self.name}-{addon}", cluster_name=self.cluster.name, addon_name=addon,
            addon_version=version.version, resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="OVERWRITE",
            configuration_values=json.dumps(configuration) if configuration else None,
            tags=self.tags, opts=child(parent or self, depends_on=depends_on), **options)

    def addons_on_nodes(self, nodes: list[pulumi.Resource]) -> k8s.storage.v1.StorageClass:
        """The add-ons that run pods, once ``nodes`` exist (they stay DEGRADED until then,
        and the provider gives up on them after 20 minutes); returns the default ``gp3``
        StorageClass, which waits for its EBS CSI driver."""
        for addon in POD_ADDONS:
            self.addon(addon, depends_on=nodes)
        # Every EBS volume since EKS 1.23 needs the EBS CSI driver (Prometheus's among them).
        role = self.irsa_role(
            f"{self.name}-ebs-csi", "kube-system", "ebs-csi-controller-sa",
            managed=["arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"])
        driver = self.addon("aws-ebs-csi-driver", depends_on=nodes,
                            service_account_role_arn=role.arn)
        return k8s.storage.v1.StorageClass(
            f"{self.name}-gp3", metadata={"name": "gp3", "annotations": {
                "storageclass.kubernetes.io/is-default-class": "true"}},
            provisioner="ebs.csi.aws.com", volume_binding_mode="WaitForFirstConsumer",
            allow_volume_expansion=True, reclaim_policy="Delete",
            parameters={"type": "gp3", "encrypted": "true"},
            opts=pulumi.ResourceOptions(parent=self, provider=self.provider,
                                        depends_on=[driver]))

    def irsa_role(self, name: str, namespace: str, service_account: str,
                  policy: dict | pulumi.Input[str] | None = None, managed: list[str] | None = None,
                  parent: pulumi.Resource | None = None) -> aws.iam.Role:
        """An IAM role only ``namespace/service_account`` can assume (IRSA)."""
        owner = parent or self
        trust = pulumi.Output.all(self.oidc_provider.arn, self.oidc_issuer).apply(
            lambda v: json.dumps({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Federated": v[0]},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {"StringEquals": {
                    f"{v[1].removeprefix('https://')}:sub":
                        f"system:serviceaccount:{namespace}:{service_account}",
                    f"{v[1].removeprefix('https://')}:aud": "sts.amazonaws.com"}}}]}))
        role = aws.iam.Role(name, assume_role_policy=trust, tags=self.tags, opts=child(owner))
        if policy is not None:
            document = json.dumps(policy) if isinstance(policy, dict) else policy
            aws.iam.RolePolicy(name, role=role.id, policy=document, opts=child(owner))
        for arn in managed or []:
            aws.iam.RolePolicyAttachment(f"{name}-{arn.rsplit('/', 1)[-1]}", role=role.name,
                                         policy_arn=arn, opts=child(owner))
        return role


def kubeconfig(name: str, endpoint: str, ca_data: str, region: str) -> str:
    """A kubeconfig whose token comes from ``aws eks get-token`` for ``region``: a runner
    without AWS_REGION or a default profile region reaches the cluster all the same."""
    return json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": name,
        "clusters": [{"name": name, "cluster": {"server": endpoint,
                                                "certificate-authority-data": ca_data}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "users": [{"name": name, "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1", "command": "aws",
            "args": ["eks", "get-token", "--cluster-name", name, "--region", region]}}}],
    })
