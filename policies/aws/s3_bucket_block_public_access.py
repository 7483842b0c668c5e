"""aws-s3-bucket-block-public-access: no ACL or policy can publish a bucket."""

from __future__ import annotations

from collections.abc import Iterator

from policies.aws._types import BUCKETS, PUBLIC_ACCESS_BLOCK
from policies.core import Context, Finding, Rule, Stack, truthy

FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")


def check(stack: Stack, context: Context) -> Iterator[Finding]:
    for bucket in stack.of_type(*BUCKETS):
        blocks = stack.referencing(bucket, PUBLIC_ACCESS_BLOCK, "bucket")
        if not blocks:
            yield Finding(f"S3 bucket {bucket.name} has no BucketPublicAccessBlock", bucket)
        for block in blocks:
            off = [flag for flag in FLAGS if not truthy(block.props.get(flag))]
            if off:
                yield Finding(f"S3 bucket {bucket.name}: public access block {block.name} "
                              f"leaves {', '.join(off)} off", bucket)


RULE = Rule(
    name="aws-s3-bucket-block-public-access",
    description="Every S3 bucket has a public access block with all four settings on.",
    severity="critical",
    rationale="One public ACL or bucket policy would otherwise publish the model artefacts.",
    remediation="Add an aws.s3.BucketPublicAccessBlock for the bucket with block_public_acls, "
                "block_public_policy, ignore_public_acls and restrict_public_buckets true.",
    resource_types=BUCKETS,
    check_stack=check,
    tags=("security",),
)
