"""kubernetes-workload-require-gpu-limits: GPU work asks the device plugin for its GPUs."""

from __future__ import annotations

from collections.abc import Iterator

from policies.core import Context, Rule, Subject
from policies.kubernetes._pods import (
    GPU,
    WORKLOADS,
    containers,
    gpu_node_selection,
    gpus,
    requests_gpus,
    resources,
    workload,
)


def check(subject: Subject, context: Context) -> Iterator[str]:
    for container in containers(subject):
        requested = gpus(container, "requests")
        if requested and gpus(container, "limits") != requested:
            limit = resources(container, "limits").get(GPU, "unset")
            yield (f"{workload(subject)}: {container.label} requests {requested} {GPU} but "
                   f"its limit is {limit}")
    how = gpu_node_selection(subject)
    if how and not requests_gpus(subject):
        yield f"{workload(subject)}: runs on GPU nodes ({how}) but no container limits {GPU}"


RULE = Rule(
    name="kubernetes-workload-require-gpu-limits",
    description="Workloads on GPU nodes set limits nvidia.com/gpu (requests equal to limits).",
    severity="high",
    rationale="GPUs are handed out only through the device plugin's extended resource: without "
              "it a pod gets no GPU, or holds a GPU node the scheduler cannot account for.",
    remediation="Set resources.limits nvidia.com/gpu (and requests, if given, equal to it) on "
                "the container that runs the model.",
    resource_types=WORKLOADS,
    check_resource=check,
    tags=("gpu", "cost", "reliability"),
)
