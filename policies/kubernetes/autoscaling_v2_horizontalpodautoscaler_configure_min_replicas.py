"""kubernetes-autoscaling-v2-horizontalpodautoscaler-configure-min-replicas: no single replica
in prod."""

from __future__ import annotations

from collections.abc import Iterator

from policies.core import Context, Rule, Subject
from policies.kubernetes._pods import HPA, workload


def check(subject: Subject, context: Context) -> Iterator[str]:
    floor = int(context.settings["minimumReplicas"])
    replicas = int(subject.get("spec.minReplicas", 1))
    if replicas < floor:
        yield f"{workload(subject)} has minReplicas {replicas}, below {floor}"


RULE = Rule(
    name="kubernetes-autoscaling-v2-horizontalpodautoscaler-configure-min-replicas",
    description="In prod, autoscalers keep at least two replicas.",
    severity="high",
    rationale="With one replica every rollout, eviction or node loss is an outage.",
    remediation="Set minReplicas to 2 or more (serving.minReplicas in Pulumi.prod.yaml) and keep "
                "a PodDisruptionBudget beside it.",
    resource_types=(HPA,),
    check_resource=check,
    environments=frozenset({"prod"}),
    config_schema={"minimumReplicas": {"type": "integer", "minimum": 1, "default": 2,
                                       "description": "fewest replicas an HPA may allow"}},
    tags=("reliability",),
)
