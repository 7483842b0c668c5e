"""The serving workload: image registry, model bucket, and the Kubernetes objects that run
``aiinfra serve`` on the GPU pools (Deployment, Service, KEDA ScaledObject on queue depth and
p95 latency, PDB, policy)."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_docker_build as docker_build
import pulumi_kubernetes as k8s

from infra.components.admission import pod_security_labels
from infra.components.autoscaling import scaled_object_spec
from infra.components.base import child, k8s_child
from infra.components.cluster import Cluster
from infra.components.monitoring import NAMESPACE as MONITORING_NAMESPACE
from infra.config import Serving as ServingConfig

NAMESPACE = "aiinfra"
APP = "aiinfra-serving"
PORT = 8000
# The Open Inference Protocol's gRPC service (and grpc.health.v1), served by the same process
# as HTTP. Probes and /metrics stay on the HTTP port: the health paths answer with a reason.
GRPC_PORT = 8001
UID = 10001
CACHE_TAG = "buildcache"
MUTABLE_TAGS = (CACHE_TAG, "*-dirty")
# What the Dockerfiles copy from the repository (the .dockerignore allowlist).
IMAGE_CONTEXT = ("pyproject.toml", "README.md", "serving", "aiinfra", "image")
# Model load and (on GPU) the TensorRT engine build, before the server is ready.
STARTUP_BUDGET_S = 600
# The rollout's await: the startup budget plus a GPU node joining, the image pull and the
# model sync before the probe starts.
ROLLOUT_TIMEOUT = f"{STARTUP_BUDGET_S // 60 + 20}m"
# Karpenter neither consolidates nor drifts a node away under a pod this long after the pod
# starts (a Go duration on `karpenter.sh/do-not-disrupt`, Karpenter >= 1.12): the image pull
# and the model sync (up to 10 minutes) plus the startup budget. Then only the
# PodDisruptionBudget holds drains, and expiry and interruption are never blocked.
LOAD_PROTECTION = f"{STARTUP_BUDGET_S // 60 + 10}m"
# AWS's own image, pinned by digest because a tag can be re-pointed; move it with
# `docker buildx imagetools inspect amazon/aws-cli:<tag>`.
AWS_CLI_IMAGE = ("docker.io/amazon/aws-cli:2.27.50@sha256:"
                 "48c3d4212e2f5b0e24bdc6af7708f9412ce65425a79575e0f78b8f8c0dcd70ab")
LABELS = {"app.kubernetes.io/name": APP, "app.kubernetes.io/part-of": "aiinfra"}


@dataclass(frozen=True)
class ServingArgs:
    name: str
    cluster: Cluster
    config: ServingConfig
    database_url: pulumi.Input[str]
    redis_url: pulumi.Input[str]
    production: bool
    tags: dict[str, str]
    depends_on: list[pulumi.Resource]
    context_dir: Path
    vpc_id: pulumi.Input[str]
    subnet_ids: list[pulumi.Input[str]]
    keda: pulumi.Resource  # the release that installs the ScaledObject CRD


class ServingWorkload(pulumi.ComponentResource):
    def __init__(self, args: ServingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aiinfra:serving:Serving", args.name, None, opts)
        config, tags, cluster = args.config, args.tags, args.cluster
        provider = cluster.provider
        self.repository = aws.ecr.Repository(
            f"{args.name}-image", name=f"{args.name}",
            # A commit's tag is pushed once and never moves; the build cache (re-exported by
            # every build) and builds of uncommitted changes are the exceptions.
            image_tag_mutability="IMMUTABLE_WITH_EXCLUSION",
            image_tag_mutability_exclusion_filters=[
                aws.ecr.RepositoryImageTagMutabilityExclusionFilterArgs(
                    filter=pattern, filter_type="WILDCARD") for pattern in MUTABLE_TAGS],
            image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(
                scan_on_push=True),
            encryption_configurations=[aws.ecr.RepositoryEncryptionConfigurationArgs(
                encryption_type="KMS")],
            force_delete=not args.production, tags=tags, opts=child(self))
        aws.ecr.LifecyclePolicy(
            f"{args.name}-image", repository=self.repository.name,
            policy=json.dumps({"rules": [{
                "rulePriority": 1, "description": "keep the newest 30 images",
                "selection": {"tagStatus": "any", "countType": "imageCountMoreThan",
                              "countNumber": 30},
                "action": {"type": "expire"}}]}),
            opts=child(self))
        self.bucket = self._model_bucket(args)
        self.image = self._image(args)
        role = cluster.irsa_role(
            f"{args.name}-models-reader", NAMESPACE, APP,
            policy=None, parent=self)
        aws.iam.RolePolicy(
            f"{args.name}-models-reader", role=role.id,
            policy=self.bucket.arn.apply(lambda arn: json.dumps({
                "Version": "2012-10-17", "Statement": [
                    {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": arn},
                    {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": f"{arn}/*"}]})),
            opts=child(self))

        k8s_opts = k8s_child(self, provider, depends_on=args.depends_on)
        namespace = k8s.core.v1.Namespace(
            f"{args.name}-namespace", metadata={"name": NAMESPACE, "labels": {
                **pod_security_labels("restricted", version=cluster.version), **LABELS}},
            opts=k8s_opts)
        ns = namespace.metadata["name"]
        k8s.core.v1.ServiceAccount(
            f"{args.name}-sa", metadata={"name": APP, "namespace": ns, "labels": LABELS,
                                         "annotations": {"eks.amazonaws.com/role-arn": role.arn}},
            automount_service_account_token=False, opts=k8s_opts)
        secret = k8s.core.v1.Secret(
            f"{args.name}-stores", metadata={"name": f"{APP}-stores", "namespace": ns,
                                             "labels": LABELS},
            string_data={"AIINFRA_DATABASE_URL": args.database_url,
                         "AIINFRA_REDIS_URL": args.redis_url},
            opts=k8s_opts)
        engines = self._engine_cache(args, ns, k8s_opts)
        self.deployment = k8s.apps.v1.Deployment(
            f"{args.name}-deployment",
            metadata={"name": APP, "namespace": ns, "labels": LABELS},
            spec=self._deployment_spec(config, self.image, self.bucket.bucket, secret,
                                       engines.metadata["name"]),
            # Pulumi waits 10 minutes for a rollout by default: a GPU node joining, a
            # multi-GiB image pull, the model sync and the startup probe's budget need more.
            opts=pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(
                custom_timeouts=pulumi.CustomTimeouts(create=ROLLOUT_TIMEOUT,
                                                      update=ROLLOUT_TIMEOUT))))
        k8s.core.v1.Service(
            f"{args.name}-service",
            metadata={"name": APP, "namespace": ns, "labels": LABELS},
            spec={"type": "ClusterIP", "selector": LABELS,
                  "ports": [{"name": "http", "port": PORT, "targetPort": "http"},
                            # appProtocol: meshes and ingress controllers speak HTTP/2 to it.
                            {"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc",
                             "appProtocol": "grpc"}]},
            opts=k8s_opts)
        # KEDA owns the replica count (through the HPA it makes from this). It waits for KEDA
        # (its CRD, and the webhook that admits it) and for Prometheus (what it reads).
        self.scaled_object = k8s.apiextensions.CustomResource(
            f"{args.name}-scaled-object", api_version="keda.sh/v1alpha1", kind="ScaledObject",
            metadata={"name": APP, "namespace": ns, "labels": LABELS, "annotations": {
                # A stack that ran the earlier autoscaling/v2 HPA (also named aiinfra-serving)
                # still has it while this is created (Pulumi deletes removed resources last),
                # and KEDA's webhook refuses a second scaler of the Deployment unless the
                # ScaledObject takes that HPA over by name (horizontalPodAutoscalerConfig).
                "scaledobject.keda.sh/transfer-hpa-ownership": "true"}},
            spec=scaled_object_spec(config, namespace=NAMESPACE, app=APP),
            opts=k8s_child(self, provider, depends_on=[*args.depends_on, args.keda]))
        k8s.policy.v1.PodDisruptionBudget(
            f"{args.name}-pdb", metadata={"name": APP, "namespace": ns, "labels": LABELS},
            spec={"maxUnavailable": 1, "selector": {"matchLabels": LABELS}},
            opts=k8s_opts)
        k8s.apiextensions.CustomResource(
            f"{args.name}-service-monitor", api_version="monitoring.coreos.com/v1",
            kind="ServiceMonitor",
            metadata={"name": APP, "namespace": ns,
                      "labels": {**LABELS, "release": "kube-prometheus-stack"}},
            spec={"selector": {"matchLabels": LABELS},
                  "endpoints": [{"port": "http", "path": "/metrics", "interval": "15s"}]},
            opts=k8s_opts)
        k8s.networking.v1.NetworkPolicy(
            f"{args.name}-network-policy",
            metadata={"name": APP, "namespace": ns, "labels": LABELS},
            spec=self._network_policy(),
            opts=k8s_opts)
        self.url = pulumi.Output.concat("http://", APP, ".", NAMESPACE, ".svc.cluster.local:",
                                        str(PORT))
        self.register_outputs({"image": self.image, "url": self.url})

    def _image(self, args: ServingArgs) -> pulumi.Output[str]:
        """The image reference the Deployment runs: built from image/ and pushed, by digest."""
        config = args.config
        if not config.build_image:  # an image published elsewhere, under the configured tag
            return self.repository.repository_url.apply(lambda url: f"{url}:{config.image_tag}")
        revision, dirty = _revision(args.context_dir)
        version = f"{config.image_tag}-{revision[:12]}" + ("-dirty" if dirty else "")
        tag = self.repository.repository_url.apply(lambda url: f"{url}:{version}")
        token = aws.ecr.get_authorization_token_output(
            registry_id=self.repository.registry_id)
        dockerfile = "image/Dockerfile" if config.gpu_image else "image/Dockerfile.cpu"
        cache = self.repository.repository_url.apply(lambda url: f"{url}:{CACHE_TAG}")
        image = docker_build.Image(
            f"{args.name}-image", context={"location": str(args.context_dir)},
            dockerfile={"location": str(args.context_dir / dockerfile)},
            platforms=["linux/amd64"], push=True, tags=[tag],
            # No build time: a timestamp would make every `pulumi up` rebuild and re-roll.
            build_args={"VERSION": config.image_tag, "REVISION": revision,
                        "SOURCE": "aiinfra"},
            registries=[{"address": self.repository.repository_url,
                         "username": token.user_name, "password": token.password}],
            cache_from=[{"registry": {"ref": cache}}],
            cache_to=[{"registry": {"ref": cache, "mode": "max",
                                    "image_manifest": True, "oci_media_types": True}}],
            build_on_preview=False, opts=child(self))
        return image.ref

    def _engine_cache(self, args: ServingArgs, namespace,
                      k8s_opts) -> k8s.core.v1.PersistentVolumeClaim:
        """A shared EFS volume for TensorRT engines: built once per (model, profile, GPU type),
        loaded by every later pod, so replacing a pod or a node does not recompile."""
        cluster, tags = args.cluster, args.tags
        security_group = aws.ec2.SecurityGroup(
            f"{args.name}-engines", vpc_id=args.vpc_id,
            description="NFS from the EKS cluster to the engine cache",
            ingress=[aws.ec2.SecurityGroupIngressArgs(
                protocol="tcp", from_port=2049, to_port=2049,
                security_groups=[cluster.cluster.vpc_config.cluster_security_group_id],
                description="NFS from cluster nodes")],
            tags={**tags, "Name": f"{args.name}-engines"}, opts=child(self))
        filesystem = aws.efs.FileSystem(
            f"{args.name}-engines", encrypted=True, performance_mode="generalPurpose",
            throughput_mode="elastic",
            lifecycle_policies=[{"transition_to_ia": "AFTER_30_DAYS"}],
            tags={**tags, "Name": f"{args.name}-engines"}, opts=child(self))
        for index, subnet_id in enumerate(args.subnet_ids):
            aws.efs.MountTarget(f"{args.name}-engines-{index}", file_system_id=filesystem.id,
                                subnet_id=subnet_id, security_groups=[security_group.id],
                                opts=child(self))
        role = cluster.irsa_role(
            f"{args.name}-efs-csi", "kube-system", "efs-csi-controller-sa",
            managed=["arn:aws:iam::aws:policy/service-role/AmazonEFSCSIDriverPolicy"],
            parent=self)
        driver = cluster.addon("aws-efs-csi-driver", depends_on=args.depends_on,
                               name=f"{args.name}-efs-csi", parent=self,
                               service_account_role_arn=role.arn)
        storage_class = k8s.storage.v1.StorageClass(
            f"{args.name}-engines", metadata={"name": "aiinfra-engines"},
            provisioner="efs.csi.aws.com", reclaim_policy="Retain",
            parameters={"provisioningMode": "efs-ap", "fileSystemId": filesystem.id,
                        "directoryPerms": "700", "uid": str(UID), "gid": str(UID)},
            opts=k8s_child(self, cluster.provider, depends_on=[driver]))
        return k8s.core.v1.PersistentVolumeClaim(
            f"{args.name}-engines",
            metadata={"name": f"{APP}-engines", "namespace": namespace, "labels": LABELS},
            spec={"accessModes": ["ReadWriteMany"],
                  "storageClassName": storage_class.metadata["name"],
                  "resources": {"requests": {"storage": "20Gi"}}},
            opts=k8s_opts)

    def _model_bucket(self, args: ServingArgs) -> aws.s3.Bucket:
        bucket = aws.s3.Bucket(f"{args.name}-models", force_destroy=not args.production,
                               tags=args.tags, opts=child(self))
        aws.s3.BucketVersioning(
            f"{args.name}-models", bucket=bucket.id,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(
                status="Enabled"), opts=child(self))
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{args.name}-models", bucket=bucket.id,
            rules=[aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=(
                    aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                        sse_algorithm="aws:kms")),
                bucket_key_enabled=True)],
            opts=child(self))
        aws.s3.BucketPublicAccessBlock(
            f"{args.name}-models", bucket=bucket.id, block_public_acls=True,
            block_public_policy=True, ignore_public_acls=True, restrict_public_buckets=True,
            opts=child(self))
        aws.s3.BucketOwnershipControls(
            f"{args.name}-models", bucket=bucket.id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
            opts=child(self))
        return bucket

    @staticmethod
    def _deployment_spec(config: ServingConfig, image, bucket, secret, engines_claim) -> dict:
        security = {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID,
                    "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                    "seccompProfile": {"type": "RuntimeDefault"}}
        gpus = str(config.gpus_per_pod)
        # No `replicas`: the autoscaler owns it (a value here conflicts with its field
        # manager on the next server-side apply, or resets the fleet on every deploy).
        return {
            "selector": {"matchLabels": LABELS},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": LABELS, "annotations": {
                    "karpenter.sh/do-not-disrupt": LOAD_PROTECTION}},
                "spec": {
                    "serviceAccountName": APP,
                    "automountServiceAccountToken": False,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": UID,
                                        "runAsGroup": UID, "fsGroup": UID,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "terminationGracePeriodSeconds": config.grace_period_s + 15,
                    "nodeSelector": {"nvidia.com/gpu.present": "true"},
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists",
                                     "effect": "NoSchedule"}],
                    "topologySpreadConstraints": [
                        {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                         "whenUnsatisfiable": "ScheduleAnyway",
                         "labelSelector": {"matchLabels": LABELS}},
                        {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                         "whenUnsatisfiable": "ScheduleAnyway",
                         "labelSelector": {"matchLabels": LABELS}}],
                    "initContainers": [{
                        "name": "fetch-models", "image": AWS_CLI_IMAGE,
                        "command": ["aws", "s3", "sync", "--only-show-errors",
                                    pulumi.Output.concat("s3://", bucket, "/models"), "/models"],
                        # UID 10001 has no home and the root is read-only: the CLI caches
                        # its IRSA credentials under $HOME/.aws and dies without a writable one.
                        "env": [{"name": "HOME", "value": "/tmp"}],
                        "securityContext": security,
                        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"},
                                      "limits": {"cpu": "1", "memory": "512Mi"}},
                        "volumeMounts": [{"name": "models", "mountPath": "/models"},
                                         {"name": "tmp", "mountPath": "/tmp"}]}],
                    "containers": [{
                        "name": "server", "image": image,
                        "ports": [{"name": "http", "containerPort": PORT},
                                  {"name": "grpc", "containerPort": GRPC_PORT}],
                        "env": [
                            {"name": "AIINFRA_ENVIRONMENT", "value": "production"},
                            {"name": "AIINFRA_HOST", "value": "0.0.0.0"},
                            {"name": "AIINFRA_PORT", "value": str(PORT)},
                            {"name": "AIINFRA_GRPC_PORT", "value": str(GRPC_PORT)},
                            {"name": "AIINFRA_MODEL_REPOSITORY", "value": "/models"},
                            {"name": "AIINFRA_LOAD_MODELS", "value": json.dumps(config.models)},
                            {"name": "AIINFRA_ENGINE_CACHE_DIR",
                             "value": "/var/cache/aiinfra/engines"},
                            {"name": "AIINFRA_GRACE_PERIOD_S", "value": str(config.grace_period_s)},
                            {"name": "HOME", "value": "/tmp"},
                            # Compiler caches on the cache volume, not the memory-backed /tmp.
                            {"name": "TORCHINDUCTOR_CACHE_DIR",
                             "value": "/var/cache/aiinfra/inductor"},
                            {"name": "TRITON_CACHE_DIR", "value": "/var/cache/aiinfra/triton"},
                        ],
                        "envFrom": [{"secretRef": {"name": secret.metadata["name"]}}],
                        "securityContext": security,
                        "resources": {
                            "requests": {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": gpus},
                            "limits": {"cpu": "4", "memory": "12Gi", "nvidia.com/gpu": gpus}},
                        "startupProbe": {"httpGet": {"path": "/v2/health/ready", "port": "http"},
                                         "periodSeconds": 10,
                                         "failureThreshold": STARTUP_BUDGET_S // 10},
                        "readinessProbe": {"httpGet": {"path": "/v2/health/ready",
                                                       "port": "http"},
                                           "periodSeconds": 5, "failureThreshold": 2},
                        "livenessProbe": {"httpGet": {"path": "/v2/health/live", "port": "http"},
                                          "periodSeconds": 10, "failureThreshold": 3},
                        # Give endpoints time to drop the pod before SIGTERM starts the drain.
                        "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
                        "volumeMounts": [
                            {"name": "models", "mountPath": "/models", "readOnly": True},
                            {"name": "engines", "mountPath": "/var/cache/aiinfra"},
                            {"name": "tmp", "mountPath": "/tmp"}]}],
                    "volumes": [{"name": "models", "emptyDir": {}},
                                {"name": "engines", "persistentVolumeClaim": {
                                    "claimName": engines_claim}},
                                {"name": "tmp", "emptyDir": {"medium": "Memory",
                                                             "sizeLimit": "512Mi"}}],
                },
            },
        }

    @staticmethod
    def _network_policy() -> dict:
        # Clients (namespaces labelled aiinfra.io/clients, and pods of this namespace) reach
        # both protocols; monitoring reaches HTTP alone, where /metrics is.
        return {
            "podSelector": {"matchLabels": LABELS},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {"ports": [{"port": PORT, "protocol": "TCP"},
                           {"port": GRPC_PORT, "protocol": "TCP"}], "from": [
                    {"namespaceSelector": {"matchLabels": {"aiinfra.io/clients": "true"}}},
                    {"podSelector": {}}]},
                {"ports": [{"port": PORT, "protocol": "TCP"}], "from": [
                    {"namespaceSelector": {"matchLabels": {
                        "kubernetes.io/metadata.name": MONITORING_NAMESPACE}}}]}],
            "egress": [
                {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]},
                {"ports": [{"port": 5432, "protocol": "TCP"}, {"port": 6379, "protocol": "TCP"},
                           {"port": 443, "protocol": "TCP"}]}],
        }


def _revision(directory: Path) -> tuple[str, bool]:
    """The checkout's commit, and whether what the image copies has uncommitted changes."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=directory, capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--", *IMAGE_CONTEXT))
    except (OSError, subprocess.SubprocessError):
        return "unknown", True
    return commit, dirty
