"""One compliant fixture per resource type the rules read (camelCase, as CrossGuard sees them),
and the helpers that turn them into rule inputs or change exactly one field."""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

from infra.components.admission import gpu_nodes, pod_security_labels
from infra.pgtune import pgtune, rds_parameters
from policies.core import Context, Stack, Subject
from policies.waivers import Waivers

DIGEST = "@sha256:" + "ab" * 32
TAGS = {"env": "prod", "team": "ml-platform", "cost-center": "ml-serving-prod"}
LABELS = {"app.kubernetes.io/name": "aiinfra-serving", "app.kubernetes.io/part-of": "aiinfra"}
METADATA = {"name": "aiinfra-serving", "namespace": "aiinfra", "labels": LABELS}
DELETE = object()  # a mutation that removes the field

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
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
NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
EC2_NODE_CLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
SQS_QUEUE = "aws:sqs/queue:Queue"
NAMESPACE = "kubernetes:core/v1:Namespace"
ADMISSION_POLICY = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy"
ADMISSION_BINDING = ("kubernetes:admissionregistration.k8s.io/v1:"
                     "ValidatingAdmissionPolicyBinding")
TODAY = date(2026, 12, 2)  # the day every context() judges waivers on
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}


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


def scaled_object() -> dict:
    """KEDA's scaler of the serving Deployment (a workload has one autoscaler: KEDA's webhook
    refuses a ScaledObject beside an HPA of the same target, so ``hpa`` is not in the stack)."""
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": copy.deepcopy(METADATA),
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                        "name": "aiinfra-serving"},
                     "minReplicaCount": 2, "maxReplicaCount": 8,
                     "triggers": [{"type": "prometheus", "metadata": {
                         "serverAddress": "http://prometheus.monitoring.svc:9090",
                         "query": "sum(aiinfra_queue_depth)", "threshold": "8"}}]}}


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
    """The system pool, the one managed node group left (the GPU pools are Karpenter's):
    on-demand, from the ``system`` launch template."""
    return {"capacityType": "ON_DEMAND", "amiType": "AL2023_x86_64_STANDARD",
            "instanceTypes": ["m7i.xlarge"], "tags": dict(TAGS),
            "scalingConfig": {"minSize": 3, "desiredSize": 3, "maxSize": 6},
            "labels": {"aiinfra.io/pool": "system"},
            "launchTemplate": {"id": "system-id", "version": "1"}}


def launch_template() -> dict:
    return {"tags": dict(TAGS),
            "metadataOptions": {"httpEndpoint": "enabled", "httpTokens": "required",
                                "httpPutResponseHopLimit": 1},
            "blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {
                "volumeSize": 50, "volumeType": "gp3", "encrypted": "true",
                "deleteOnTermination": "true"}}]}


def node_pool() -> dict:
    """A reserved GPU pool as ``gpu_pool_objects`` (infra/components/nodepools.py) makes it
    (tests/policies/test_karpenter_rules.py checks that it does): one L4 shape, its capacity
    reservation then on-demand, tainted, consolidating only empty nodes, at most 4 nodes."""
    return {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "gpu-l4"},
            "spec": {
                "weight": 100,
                "limits": {"nvidia.com/gpu": "4", "cpu": "32"},
                "disruption": {"consolidationPolicy": "WhenEmpty", "consolidateAfter": "10m",
                               "budgets": [{"nodes": "10%"}]},
                "template": {
                    "metadata": {"labels": {"aiinfra.io/pool": "l4",
                                            "aiinfra.io/capacity": "reserved",
                                            "aiinfra.io/ami-family": "al2023-nvidia",
                                            "nvidia.com/gpu.present": "true"}},
                    "spec": {
                        "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass",
                                         "name": "gpu-l4"},
                        "requirements": [
                            {"key": "node.kubernetes.io/instance-type", "operator": "In",
                             "values": ["g6.2xlarge"]},
                            {"key": "karpenter.sh/capacity-type", "operator": "In",
                             "values": ["reserved", "on-demand"]},
                            {"key": "topology.kubernetes.io/zone", "operator": "In",
                             "values": ["us-east-1a"]},
                            {"key": "kubernetes.io/arch", "operator": "In",
                             "values": ["amd64"]}],
                        "taints": [dict(GPU_TAINT)],
                        "expireAfter": "720h",
                        "terminationGracePeriod": "1h"}}}}


def ec2_node_class() -> dict:
    """The pool's EC2NodeClass: AL2023, IMDSv2 with hop limit 1, an encrypted gp3 root."""
    return {"apiVersion": "karpenter.k8s.aws/v1", "kind": "EC2NodeClass",
            "metadata": {"name": "gpu-l4"},
            "spec": {
                "role": "aiinfra-prod-karpenter-nodes",
                "amiSelectorTerms": [{"alias": "al2023@latest"}],
                "subnetSelectorTerms": [{"id": "subnet-a-id"}],
                "securityGroupSelectorTerms": [{"id": "sg-cluster"}],
                "metadataOptions": {"httpEndpoint": "enabled", "httpProtocolIPv6": "disabled",
                                    "httpPutResponseHopLimit": 1, "httpTokens": "required"},
                "blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {
                    "volumeSize": "100Gi", "volumeType": "gp3", "encrypted": True,
                    "deleteOnTermination": True}}],
                "tags": {**TAGS, "aiinfra.io/pool": "l4", "aiinfra.io/capacity": "reserved"},
                "capacityReservationSelectorTerms": [{"id": "l4-odcr-id"}]}}


def karpenter_release() -> dict:
    """Karpenter's Helm release, reading interruptions from the ``interruptions`` queue."""
    return {"name": "karpenter", "namespace": "kube-system", "version": "1.14.0",
            "chart": "oci://public.ecr.aws/karpenter/karpenter",
            "values": {"settings": {"clusterName": "aiinfra-prod",
                                    "interruptionQueue": "interruptions"},
                       "serviceAccount": {"name": "karpenter"},
                       "nodeSelector": {"aiinfra.io/pool": "system"}}}


def sqs_queue() -> dict:
    return {"messageRetentionSeconds": 300, "sqsManagedSseEnabled": True, "tags": dict(TAGS)}


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


def namespace() -> dict:
    """The serving namespace: restricted, pinned to the cluster's version."""
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": "aiinfra", "labels": {**pod_security_labels("restricted", version="1.35"),
                                      **LABELS}}}


def admission_policy() -> dict:
    """One of the rendered ValidatingAdmissionPolicies (GPU nodes) and, below, its binding."""
    return gpu_nodes().policy()


def admission_binding() -> dict:
    return gpu_nodes().binding()


FIXTURES = {DEPLOYMENT: deployment, SCALED_OBJECT: scaled_object, PDB: pdb,
            RDS_INSTANCE: rds_instance, RDS_PARAMETER_GROUP: rds_parameter_group,
            REPLICATION_GROUP: replication_group, EKS_CLUSTER: eks_cluster,
            NODE_GROUP: node_group, LAUNCH_TEMPLATE: launch_template, BUCKET: bucket,
            PUBLIC_ACCESS_BLOCK: public_access_block, BUCKET_ENCRYPTION: bucket_encryption,
            ECR_REPOSITORY: ecr_repository, NODE_POOL: node_pool,
            EC2_NODE_CLASS: ec2_node_class, HELM_RELEASE: karpenter_release,
            SQS_QUEUE: sqs_queue, NAMESPACE: namespace, ADMISSION_POLICY: admission_policy,
            ADMISSION_BINDING: admission_binding}
NAMES = {DEPLOYMENT: "serving", SCALED_OBJECT: "serving-scaled-object", HPA: "serving-hpa",
         PDB: "serving-pdb", RDS_INSTANCE: "db", RDS_PARAMETER_GROUP: "db-params",
         REPLICATION_GROUP: "cache", EKS_CLUSTER: "cluster",
         NODE_GROUP: "system", LAUNCH_TEMPLATE: "system", BUCKET: "models",
         PUBLIC_ACCESS_BLOCK: "models", BUCKET_ENCRYPTION: "models", ECR_REPOSITORY: "serving",
         NODE_POOL: "gpu-l4", EC2_NODE_CLASS: "gpu-l4-class", HELM_RELEASE: "karpenter",
         SQS_QUEUE: "interruptions", NAMESPACE: "serving-namespace",
         ADMISSION_POLICY: "gpu-nodes", ADMISSION_BINDING: "gpu-nodes"}
# Properties that point at another fixture (adapters find these from ids and names).
REFERENCE_PROPS = {RDS_INSTANCE: "parameterGroupName", NODE_GROUP: "launchTemplate",
                   PUBLIC_ACCESS_BLOCK: "bucket", BUCKET_ENCRYPTION: "bucket"}
TARGETS = {RDS_INSTANCE: "db-params", NODE_GROUP: "system", PUBLIC_ACCESS_BLOCK: "models",
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
    return Context(environment=environment, stack=environment, settings=settings,
                   waivers=Waivers(), today=TODAY)
