"""Type tokens and small readers shared by the AWS rules."""

from __future__ import annotations

import importlib
import inspect
from functools import lru_cache

RDS_INSTANCE = "aws:rds/instance:Instance"
RDS_PARAMETER_GROUP = "aws:rds/parameterGroup:ParameterGroup"
REPLICATION_GROUP = "aws:elasticache/replicationGroup:ReplicationGroup"
EKS_CLUSTER = "aws:eks/cluster:Cluster"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
BUCKETS = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
BUCKET_ENCRYPTION = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2")
ECR_REPOSITORY = "aws:ecr/repository:Repository"


@lru_cache(maxsize=512)
def is_taggable(type_token: str) -> bool | None:
    """Whether the provider's resource takes ``tags`` (from pulumi_aws' own signatures);
    None when the SDK is not importable or does not know the type."""
    try:
        _, module_path, class_name = type_token.split(":")
        module = module_path.split("/")[0]
        sdk = importlib.import_module("pulumi_aws" if module == "index" else f"pulumi_aws.{module}")
        resource_class = getattr(sdk, class_name)
        return "tags" in inspect.signature(resource_class._internal_init).parameters
    except (ValueError, ImportError, AttributeError):
        return None
