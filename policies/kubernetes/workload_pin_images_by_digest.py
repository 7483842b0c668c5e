"""kubernetes-workload-pin-images-by-digest: prod runs exactly the bytes that were tested."""

from __future__ import annotations

from collections.abc import Iterator

from policies.core import Context, Rule, Subject
from policies.kubernetes._images import has_digest
from policies.kubernetes._pods import WORKLOADS, containers, workload


def check(subject: Subject, context: Context) -> Iterator[str]:
    for container in containers(subject):
        image = str(container.spec.get("image") or "")
        if not has_digest(image):
            yield (f"{workload(subject)}: {container.label} image {image!r} is not pinned by "
                   "digest")


RULE = Rule(
    name="kubernetes-workload-pin-images-by-digest",
    description="In prod every image is pinned by digest (name:tag@sha256:...).",
    severity="high",
    rationale="A tag can be moved to other bytes; only a digest guarantees prod runs the image "
              "that was tested and scanned.",
    remediation="Reference images as name:tag@sha256:<digest>: the serving image takes its "
                "digest from the build (serving.buildImage: true), third-party images are "
                "pinned in infra/components.",
    resource_types=WORKLOADS,
    check_resource=check,
    environments=frozenset({"prod"}),
    tags=("supply-chain",),
)
