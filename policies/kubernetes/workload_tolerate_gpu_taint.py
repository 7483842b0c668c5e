"""kubernetes-workload-tolerate-gpu-taint: GPU pods can land on the tainted GPU nodes."""

from __future__ import annotations

from collections.abc import Iterator

from policies.core import Context, NotApplicable, Rule, Subject
from policies.kubernetes._pods import GPU, WORKLOADS, requests_gpus, tolerates_gpu_taint, workload


def check(subject: Subject, context: Context) -> Iterator[str]:
    if not requests_gpus(subject):
        raise NotApplicable(f"requests no {GPU}")
    if not tolerates_gpu_taint(subject):
        yield (f"{workload(subject)}: requests {GPU} but does not tolerate the "
               f"{GPU}:NoSchedule taint")


RULE = Rule(
    name="kubernetes-workload-tolerate-gpu-taint",
    description="Pods that request GPUs tolerate the nvidia.com/gpu:NoSchedule taint of the GPU "
                "node pools.",
    severity="high",
    rationale="GPU nodes carry the taint so that only GPU work lands on them; a GPU pod without "
              "the toleration stays Pending.",
    remediation="Add tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}] "
                "to the pod template.",
    resource_types=WORKLOADS,
    check_resource=check,
    tags=("gpu", "reliability"),
)
