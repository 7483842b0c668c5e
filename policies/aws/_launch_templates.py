"""The launch template a node group starts its nodes from."""

from __future__ import annotations

from policies.aws._types import LAUNCH_TEMPLATE
from policies.core import Stack, Subject

DEFAULT_TEMPLATE = "uses EKS's default launch template"


def launch_templates(stack: Stack, group: Subject) -> list[Subject]:
    return stack.referenced(group, "launchTemplate", LAUNCH_TEMPLATE)
