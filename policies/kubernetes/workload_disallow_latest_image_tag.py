"""kubernetes-workload-disallow-latest-image-tag: images name a fixed version."""

from __future__ import annotations

from collections.abc import Iterator

from policies.core import Context, Rule, Subject
from policies.kubernetes._images import has_digest, tag
from policies.kubernetes._pods import WORKLOADS, containers, workload


def check(subject: Subject, context: Context) -> Iterator[str]:
    for container in containers(subject):
        image = str(container.spec.get("image") or "")
        if has_digest(image):
            continue
        version = tag(image)
        if version is None:
            yield f"{workload(subject)}: {container.label} image {image!r} has no tag"
        elif version == "latest":
            yield f"{workload(subject)}: {container.label} image {image!r} uses the latest tag"


RULE = Rule(
    name="kubernetes-workload-disallow-latest-image-tag",
    description="Images carry a version tag or a digest, never :latest or nothing.",
    severity="medium",
    rationale="A moving tag lets two pods of one Deployment run different code and makes a "
              "rollback impossible to pin.",
    remediation="Use an immutable version tag, e.g. repo:1.4.2 (with @sha256:<digest> in prod).",
    resource_types=WORKLOADS,
    check_resource=check,
    tags=("supply-chain", "reliability"),
)
