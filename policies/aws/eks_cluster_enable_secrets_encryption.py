"""aws-eks-cluster-enable-secrets-encryption: Kubernetes secrets are envelope-encrypted."""

from __future__ import annotations

from collections.abc import Iterator

from policies.aws._types import EKS_CLUSTER
from policies.core import Context, Rule, Subject, as_list, as_map, is_list


def _encrypts_secrets(config: object) -> bool:
    configs = as_list(config) if is_list(config) else [config]
    for item in map(as_map, configs):
        if ("secrets" in as_list(item.get("resources"))
                and as_map(item.get("provider")).get("keyArn")):
            return True
    return False


def check(subject: Subject, context: Context) -> Iterator[str]:
    if not _encrypts_secrets(subject.props.get("encryptionConfig")):
        yield (f"EKS cluster {subject.name} does not encrypt Kubernetes secrets with KMS (no "
               "encryptionConfig for secrets with a key)")


RULE = Rule(
    name="aws-eks-cluster-enable-secrets-encryption",
    description="EKS clusters envelope-encrypt Kubernetes secrets with a KMS key.",
    severity="high",
    rationale="Secrets (the database and Redis URLs) would be protected only by etcd's disk "
              "encryption, readable to anyone with an etcd backup.",
    remediation="Set encryption_config with resources=['secrets'] and a customer-managed KMS "
                "key with rotation.",
    resource_types=(EKS_CLUSTER,),
    check_resource=check,
    tags=("security", "encryption"),
)
