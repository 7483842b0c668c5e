"""kubernetes-apps-v1-deployment-require-autoscaler: serving scales with load."""

from __future__ import annotations

from collections.abc import Iterator

from policies.core import Context, Finding, Rule, Stack
from policies.kubernetes._pods import DEPLOYMENT, GPU, requests_gpus, workload
from policies.kubernetes._scaling import autoscalers


def check(stack: Stack, context: Context) -> Iterator[Finding]:
    for deployment in stack.of_type(DEPLOYMENT):
        if requests_gpus(deployment) and not autoscalers(stack, deployment):
            yield Finding(f"{workload(deployment)} serves on {GPU} but no autoscaler (KEDA "
                          "ScaledObject or HorizontalPodAutoscaler) targets it", deployment)


RULE = Rule(
    name="kubernetes-apps-v1-deployment-require-autoscaler",
    description="The serving Deployments (those that request GPUs) are scaled by an "
                "autoscaler: a KEDA ScaledObject, or a HorizontalPodAutoscaler.",
    severity="medium",
    rationale="GPU replicas are the largest cost: a fixed count is idle money off-peak and "
              "refused requests at peak.",
    remediation="Add a keda.sh/v1alpha1 ScaledObject whose scaleTargetRef is this Deployment, "
                "scaling on queue depth, and leave spec.replicas unset.",
    resource_types=(DEPLOYMENT,),
    check_stack=check,
    tags=("cost", "reliability", "gpu"),
)
