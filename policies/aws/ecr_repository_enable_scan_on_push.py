"""aws-ecr-repository-enable-scan-on-push: every pushed image is scanned for CVEs."""

from __future__ import annotations

from collections.abc import Iterator

from policies.aws._types import ECR_REPOSITORY
from policies.core import Context, Rule, Subject, truthy


def check(subject: Subject, context: Context) -> Iterator[str]:
    if not truthy(subject.get("imageScanningConfiguration.scanOnPush")):
        yield f"ECR repository {subject.name} does not scan images on push"


RULE = Rule(
    name="aws-ecr-repository-enable-scan-on-push",
    description="ECR repositories scan images on push.",
    severity="medium",
    rationale="Known CVEs in the base image or the Python wheels would reach prod unnoticed.",
    remediation="Set image_scanning_configuration.scan_on_push=True (or enhanced scanning on "
                "the registry).",
    resource_types=(ECR_REPOSITORY,),
    check_resource=check,
    tags=("security", "supply-chain"),
)
