"""aws-resource-require-cost-allocation-tags: every taggable resource says whose spend it is."""

from __future__ import annotations

from collections.abc import Iterator

from policies.aws._types import is_taggable
from policies.core import Context, NotApplicable, Rule, Subject, as_map


def check(subject: Subject, context: Context) -> Iterator[str]:
    tags = as_map(subject.props.get("tags"))
    if is_taggable(subject.type) is False or (is_taggable(subject.type) is None and not tags):
        raise NotApplicable("the resource takes no tags")
    missing = [key for key in context.settings["requiredTags"]
               if not str(tags.get(key) or "").strip()]
    if missing:
        yield f"{subject.type} {subject.name} lacks cost-allocation tag(s) {', '.join(missing)}"
    env = tags.get("env")
    if env and env != context.environment:
        yield (f"{subject.type} {subject.name} is tagged env={env} in the {context.environment} "
               "stack")


RULE = Rule(
    name="aws-resource-require-cost-allocation-tags",
    description="Every taggable AWS resource carries the env, team and cost-center tags, with "
                "env naming its stack's environment.",
    severity="low",
    rationale="Untagged or mis-tagged spend cannot be attributed to a team or environment in "
              "Cost Explorer.",
    remediation="Pass config.all_tags to the resource (aiinfra:tags in Pulumi.<stack>.yaml "
                "sets team and cost-center; env comes from aiinfra:environment).",
    resource_types=("aws:*",),
    check_resource=check,
    config_schema={"requiredTags": {"type": "array", "items": {"type": "string"},
                                    "default": ["env", "team", "cost-center"],
                                    "description": "tag keys every taggable resource needs"}},
    tags=("cost",),
)
