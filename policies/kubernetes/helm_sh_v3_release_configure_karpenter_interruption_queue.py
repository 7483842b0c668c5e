"""kubernetes-helm-sh-v3-release-configure-karpenter-interruption-queue: Karpenter hears of spot
interruptions and maintenance before the node goes."""

from __future__ import annotations

from collections.abc import Iterator

from policies.core import Context, Finding, NotApplicable, Rule, Stack, as_map
from policies.kubernetes._karpenter import HELM_RELEASE, SQS_QUEUE, is_karpenter_release

SETTING = "settings.interruptionQueue"


def check(stack: Stack, context: Context) -> Iterator[Finding]:
    releases = [r for r in stack.of_type(HELM_RELEASE) if is_karpenter_release(r)]
    if not releases:
        raise NotApplicable("no Karpenter Helm release")
    queues = {name for q in stack.of_type(SQS_QUEUE) for name in (q.name, q.props.get("name"))
              if name}
    for release in releases:
        label = f"Karpenter release {release.props.get('name') or release.name}"
        queue = as_map(as_map(release.props.get("values")).get("settings")).get(
            "interruptionQueue")
        if not queue:
            yield Finding(f"{label} sets no values.{SETTING}, so it learns of spot "
                          "interruptions only when the node is gone", release)
        elif str(queue) not in queues:
            yield Finding(f"{label} reads interruptions from queue {queue}, which is not an "
                          f"SQS queue ({SQS_QUEUE}) in this stack", release)


RULE = Rule(
    name="kubernetes-helm-sh-v3-release-configure-karpenter-interruption-queue",
    description="The Karpenter Helm release names an SQS queue of the stack in "
                "settings.interruptionQueue.",
    severity="high",
    rationale="Through that queue (fed by EventBridge) Karpenter gets the two-minute spot "
              "warning, rebalance recommendations and scheduled maintenance, and drains and "
              "replaces the node in time; without it the node vanishes with its GPU pods and "
              "their replacements start only after it does.",
    remediation="Create an aws.sqs.Queue with EventBridge rules for EC2 Spot Instance "
                "Interruption Warning, EC2 Instance Rebalance Recommendation, EC2 Instance "
                "State-change Notification and AWS Health Event, and pass its name as "
                "values.settings.interruptionQueue (the controller role needs sqs:ReceiveMessage "
                "and sqs:DeleteMessage on it).",
    resource_types=(HELM_RELEASE, SQS_QUEUE),
    check_stack=check,
    tags=("reliability", "spot"),
)
