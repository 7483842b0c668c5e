"""aws-s3-bucket-enable-server-side-encryption: buckets declare their default encryption."""

from __future__ import annotations

from collections.abc import Iterator

from policies.aws._types import BUCKET_ENCRYPTION, BUCKETS
from policies.core import Context, Finding, Rule, Stack, Subject, as_list, as_map


def _algorithm(rule: object) -> str | None:
    return as_map(as_map(rule).get("applyServerSideEncryptionByDefault")).get("sseAlgorithm")


def _encrypted(stack: Stack, bucket: Subject) -> bool:
    inline = as_map(bucket.props.get("serverSideEncryptionConfiguration"))
    if _algorithm(inline.get("rule")):
        return True
    return any(_algorithm(rule)
               for kind in BUCKET_ENCRYPTION
               for config in stack.referencing(bucket, kind, "bucket")
               for rule in as_list(config.props.get("rules")))


def check(stack: Stack, context: Context) -> Iterator[Finding]:
    for bucket in stack.of_type(*BUCKETS):
        if not _encrypted(stack, bucket):
            yield Finding(f"S3 bucket {bucket.name} declares no default encryption "
                          "(no BucketServerSideEncryptionConfiguration)", bucket)


RULE = Rule(
    name="aws-s3-bucket-enable-server-side-encryption",
    description="Every S3 bucket declares server-side encryption (KMS preferred).",
    severity="high",
    rationale="Model weights are the product: an explicit KMS key gives access control and an "
              "audit trail that S3's implicit default does not.",
    remediation="Add an aws.s3.BucketServerSideEncryptionConfiguration with sse_algorithm "
                "'aws:kms' and bucket_key_enabled=True.",
    resource_types=BUCKETS,
    check_stack=check,
    tags=("security", "encryption"),
)
