"""One compliant fixture per resource type the rules read (camelCase, as CrossGuard sees them),
and the helpers that turn them into rule inputs or change exactly one field."""

from __future__ import annotations

import copy
from typing import Any

from infra.pgtune import pgtune, rds_parameters
from policies.core import Context, Stack, Subject

DIGEST = "@sha256:" + "ab" * 32
TAGS = {"env": "prod", "team": "ml-platform", "cost-center": "ml-serving-prod"}
LABELS = {"app.kubernetes.io/name": "aiinfra-serving", "app.kubernetes.io/part-of": "aiinfra"}
METADATA = {"name": "aiinfra-serving", "namespace": "aiinfra", "labels": LABELS}
DELETE = object()  # a mutation that removes the field

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
RDS_INSTANCE = "aws:rds/instance:Instance"
RDS_PARAMETER_GROUP = "aws:rds/parameterGroup:ParameterGroup"
REPLICATION_GROUP = "aws:elasticache/replicationGroup:ReplicationGroup"
EKS_CLUSTER = "aws:eks/cluster:Cluster"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
BUCKET = "aws:s3/bucket:Bucket"
PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
BUCKET_ENCRYPTION = ("aws:s3/bucketServerSideEncryptionConfiguration:"
                     "BucketServerSideEncryptionConfiguration")
ECR_REPOSITORY = "aws:ecr/repository:Repository"


def _security() -> dict:
    return {"runAsNonRoot": True, "runAsUser": 10001, "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"}}


def deployment() -> dict:
    """The serving Deployment: a GPU server container and a model-fetching init container."""
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": copy.deepcopy(METADATA),
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": dict(LABELS)},
            "template": {
                "metadata": {"labels": dict(LABELS)},
                "spec": {
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 10001,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "nodeSelector": {"nvidia.com/gpu.present": "true"},
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists",
                                     "effect": "NoSchedule"}],
                    "initContainers": [{
                        "name": "fetch-models",
                        "image": f"docker.io/amazon/aws-cli:2.27.50{DIGEST}",
                        "securityContext": _security(),
                        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"},
                                      "limits": {"cpu": "1", "memory": "512Mi"}}}],
                    "containers": [{
                        "name": "server",
                        "image": f"123456789012.dkr.ecr.us-east-1.amazonaws.com/serving:0.1.0"
                                 f"{DIGEST}",
                        "securityContext": _security(),
                        "resources": {
                            "requests": {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "1"},
                            "limits": {"cpu": "4", "memory": "12Gi", "nvidia.com/gpu": "1"}},
                        "readinessProbe": {"httpGet": {"path": "/v2/health/ready",
                                                       "port": "http"}},
                        "livenessProbe": {"httpGet": {"path": "/v2/health/live",
                                                      "port": "http"}}}],
                },
            },
        },
    }


def hpa() -> dict:
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": copy.deepcopy(METADATA),
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                        "name": "aiinfra-serving"},
                     "minReplicas": 2, "maxReplicas": 8}}


def pdb() -> dict:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": copy.deepcopy(METADATA),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": dict(LABELS)}}}


def rds_instance() -> dict:
    return {"engine": "postgres", "instanceClass": "db.r7g.xlarge", "storageEncrypted": True,
            "publiclyAccessible": False, "multiAz": True, "backupRetentionPeriod": 14,
            "deletionProtection": True, "parameterGroupName": "db-params", "tags": dict(TAGS)}


def rds_parameter_group() -> dict:
    """PGTune's parameters for db.r7g.xlarge (4 vCPU, 32 GiB)."""
    return {"family": "postgres16", "tags": dict(TAGS),
            "parameters": [{"name": p.name, "value": p.value, "applyMethod": p.apply_method}
                           for p in rds_parameters(pgtune(4, 32, "oltp"))]}


def replication_group() -> dict:
    return {"engine": "redis", "nodeType": "cache.r7g.large", "atRestEncryptionEnabled": True,
            "transitEncryptionEnabled": True, "authToken": "x" * 48, "tags": dict(TAGS)}


def eks_cluster() -> dict:
    return {"name": "aiinfra-prod", "tags": dict(TAGS),
            "enabledClusterLogTypes": ["api", "audit", "authenticator", "controllerManager",
                                       "scheduler"],
            "encryptionConfig": {"resources": ["secrets"],
                                 "provider": {"keyArn": "arn:aws:kms:us-east-1:1:key/k"}},
            "vpcConfig": {"endpointPublicAccess": False, "endpointPrivateAccess": True}}


def node_group() -> dict:
    """A reserved-capacity GPU pool: on-demand, tainted, from the ``gpu`` launch template."""
    return {"capacityType": "ON_DEMAND", "amiType": "AL2023_x86_64_NVIDIA",
            "instanceTypes": ["g6.2xlarge"], "tags": dict(TAGS),
            "scalingConfig": {"minSize": 2, "desiredSize": 2, "maxSize": 4},
            "taints": [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}],
            "launchTemplate": {"id": "gpu-id", "version": "1"}}


def launch_template() -> dict:
    return {"tags": dict(TAGS),
            "metadataOptions": {"httpEndpoint": "enabled", "httpTokens": "required",
                                "httpPutResponseHopLimit": 2},
            "blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {
                "volumeSize": 100, "volumeType": "gp3", "encrypted": "true"}}]}


def bucket() -> dict:
    return {"forceDestroy": False, "tags": dict(TAGS)}


def public_access_block() -> dict:
    return {"bucket": "models-id", "blockPublicAcls": True, "blockPublicPolicy": True,
            "ignorePublicAcls": True, "restrictPublicBuckets": True}


def bucket_encryption() -> dict:
    return {"bucket": "models-id", "rules": [{"bucketKeyEnabled": True,
                                              "applyServerSideEncryptionByDefault": {
                                                  "sseAlgorithm": "aws:kms"}}]}


def ecr_repository() -> dict:
    return {"name": "serving", "imageTagMutability": "IMMUTABLE", "tags": dict(TAGS),
            "imageScanningConfiguration": {"scanOnPush": True}}


FIXTURES = {DEPLOYMENT: deployment, HPA: hpa, PDB: pdb, RDS_INSTANCE: rds_instance,
            RDS_PARAMETER_GROUP: rds_parameter_group, REPLICATION_GROUP: replication_group,
            EKS_CLUSTER: eks_cluster, NODE_GROUP: node_group, LAUNCH_TEMPLATE: launch_template,
            BUCKET: bucket, PUBLIC_ACCESS_BLOCK: public_access_block,
            BUCKET_ENCRYPTION: bucket_encryption, ECR_REPOSITORY: ecr_repository}
NAMES = {DEPLOYMENT: "serving", HPA: "serving-hpa", PDB: "serving-pdb", RDS_INSTANCE: "db",
         RDS_PARAMETER_GROUP: "db-params", REPLICATION_GROUP: "cache", EKS_CLUSTER: "cluster",
         NODE_GROUP: "gpu", LAUNCH_TEMPLATE: "gpu", BUCKET: "models",
         PUBLIC_ACCESS_BLOCK: "models", BUCKET_ENCRYPTION: "models", ECR_REPOSITORY: "serving"}
# Properties that point at another fixture (adapters find these from ids and names).
REFERENCE_PROPS = {RDS_INSTANCE: "parameterGroupName", NODE_GROUP: "launchTemplate",
                   PUBLIC_ACCESS_BLOCK: "bucket", BUCKET_ENCRYPTION: "bucket"}
TARGETS = {RDS_INSTANCE: "db-params", NODE_GROUP: "gpu", PUBLIC_ACCESS_BLOCK: "models",
           BUCKET_ENCRYPTION: "models"}


def _mentions(value: Any, name: str) -> bool:
    if isinstance(value, str):
        return value in (name, f"{name}-id")
    if isinstance(value, dict):
        return any(_mentions(v, name) for v in value.values())
    if isinstance(value, list):
        return any(_mentions(v, name) for v in value)
    return False


def mutate(props: dict, path: str, value: Any) -> dict:
    """A copy of ``props`` with exactly one field (dotted path, list indices allowed) set, or
    removed with ``DELETE``."""
    changed = copy.deepcopy(props)
    *parents, last = path.split(".")
    target: Any = changed
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    key: Any = int(last) if isinstance(target, list) else last
    if value is DELETE:
        del target[key]
    else:
        target[key] = value
    return changed


def subject(type_token: str, props: dict | None = None, name: str | None = None) -> Subject:
    props = FIXTURES[type_token]() if props is None else props
    name = name or NAMES[type_token]
    references = {}
    prop = REFERENCE_PROPS.get(type_token)
    if prop and _mentions(props.get(prop), TARGETS[type_token]):
        references[prop] = (TARGETS[type_token],)
    return Subject(type_token, name, props, urn=f"urn:pulumi:test::aiinfra::{type_token}::{name}",
                   references=references)


def compliant_stack(changed: dict[str, dict] | None = None) -> Stack:
    """Every fixture in one stack, the props of the types in ``changed`` replaced."""
    changed = changed or {}
    return Stack(tuple(subject(t, changed.get(t)) for t in FIXTURES))


def context(environment: str = "prod", **settings: Any) -> Context:
    return Context(environment=environment, stack=environment, settings=settings)
