"""kubernetes-autoscaler-configure-min-replicas: no single replica, and no scale to zero, in
prod."""

from __future__ import annotations

from collections.abc import Iterator

from policies.core import Context, Rule, Subject
from policies.kubernetes._pods import workload
from policies.kubernetes._scaling import AUTOSCALERS, bounds


def check(subject: Subject, context: Context) -> Iterator[str]:
    floor = int(context.settings["minimumReplicas"])
    found = bounds(subject)
    if found.minimum < floor:
        yield f"{workload(subject)} has {found.min_field} {found.minimum}, below {floor}"
    if found.idle is not None and found.idle < floor:
        yield (f"{workload(subject)} has idleReplicaCount {found.idle}, below {floor} (KEDA "
               "scales to it while no trigger is active)")


RULE = Rule(
    name="kubernetes-autoscaler-configure-min-replicas",
    description="In prod, autoscalers (KEDA ScaledObjects and HorizontalPodAutoscalers) keep "
                "at least two replicas.",
    severity="high",
    rationale="With one replica every rollout, eviction or node loss is an outage; with none "
              "(scale to zero) requests after a quiet spell find no pod to answer them.",
    remediation="Set minReplicaCount (minReplicas on an HPA) to 2 or more (serving.minReplicas "
                "in Pulumi.prod.yaml), leave idleReplicaCount unset, and keep a "
                "PodDisruptionBudget beside it.",
    resource_types=AUTOSCALERS,
    check_resource=check,
    environments=frozenset({"prod"}),
    config_schema={"minimumReplicas": {"type": "integer", "minimum": 1, "default": 2,
                                       "description": "fewest replicas an autoscaler may "
                                                      "allow"}},
    tags=("reliability",),
)
