"""kubernetes-apps-v1-deployment-require-pod-disruption-budget: drains keep replicas serving."""

from __future__ import annotations

from collections.abc import Iterator

from policies.core import Context, Finding, Rule, Stack
from policies.kubernetes._pods import DEPLOYMENT, STATEFUL_SET, workload
from policies.kubernetes._scaling import budgets, max_replicas


def check(stack: Stack, context: Context) -> Iterator[Finding]:
    for target in stack.of_type(DEPLOYMENT, STATEFUL_SET):
        replicas = max_replicas(stack, target)
        if replicas >= 2 and not budgets(stack, target):
            yield Finding(f"{workload(target)} runs up to {replicas} replicas but no "
                          "PodDisruptionBudget in its namespace selects its pods", target)


RULE = Rule(
    name="kubernetes-apps-v1-deployment-require-pod-disruption-budget",
    description="Every Deployment (or StatefulSet) that can run two or more replicas has a "
                "PodDisruptionBudget selecting its pods.",
    severity="medium",
    rationale="Without one, node drains (upgrades, spot interruptions, scale-down) may evict "
              "every replica at once.",
    remediation="Add a policy/v1 PodDisruptionBudget in the same namespace whose "
                "selector.matchLabels match the pod labels, with maxUnavailable: 1.",
    resource_types=(DEPLOYMENT, STATEFUL_SET),
    check_stack=check,
    tags=("reliability",),
)
