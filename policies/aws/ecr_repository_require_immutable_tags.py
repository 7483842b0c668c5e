"""aws-ecr-repository-require-immutable-tags: a tag always means the same image."""

from __future__ import annotations

from collections.abc import Iterator

from policies.aws._types import ECR_REPOSITORY
from policies.core import Context, Rule, Subject

IMMUTABLE = ("IMMUTABLE", "IMMUTABLE_WITH_EXCLUSION")


def check(subject: Subject, context: Context) -> Iterator[str]:
    mutability = subject.props.get("imageTagMutability") or "MUTABLE"
    if mutability not in IMMUTABLE:
        yield (f"ECR repository {subject.name} lets tags be overwritten (imageTagMutability is "
               f"{mutability})")


RULE = Rule(
    name="aws-ecr-repository-require-immutable-tags",
    description="ECR repositories make image tags immutable.",
    severity="medium",
    rationale="An overwritten tag silently changes what a Deployment pulls on its next restart.",
    remediation="Set image_tag_mutability='IMMUTABLE' and publish every build under a new tag.",
    resource_types=(ECR_REPOSITORY,),
    check_resource=check,
    tags=("supply-chain", "reliability"),
)
