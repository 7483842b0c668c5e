"""Every IAM policy document the program renders, against AWS's own service authorization
data (policy_sentry's bundled IAM definition): each action exists, and a statement grants
``"Resource": "*"`` only for actions that cannot be scoped to a resource."""

from __future__ import annotations

import json
from functools import cache

import pytest
from policy_sentry.querying.actions import (
    get_action_data,
    get_actions_that_support_wildcard_arns_only,
)

STACKS = ["dev", "staging", "prod"]
DOCUMENT_KEYS = ("policy", "assumeRolePolicy")


def documents(graph) -> list[tuple[str, dict]]:
    found = []
    for resource in graph.resources:
        for key in DOCUMENT_KEYS:
            value = resource.inputs.get(key)
            if isinstance(value, str) and value.lstrip().startswith("{"):
                document = json.loads(value)
                if "Statement" in document:  # not an IAM document (an S3 lifecycle, say)
                    found.append((f"{resource.name}.{key}", document))
    return found


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


@cache
def wildcard_only(service: str) -> frozenset[str]:
    return frozenset(a.lower() for a in get_actions_that_support_wildcard_arns_only(service))


def action_exists(action: str) -> bool:
    service, _, name = action.partition(":")
    data = get_action_data(service, name)
    return bool(data and data.get(service))


@pytest.mark.parametrize("stack", STACKS)
def test_every_action_exists(graphs, stack: str) -> None:
    unknown = [f"{where}: {action}" for where, document in documents(graphs[stack])
               for statement in as_list(document["Statement"])
               for action in as_list(statement.get("Action", []))
               if not action_exists(action)]
    assert unknown == []
    assert len(documents(graphs[stack])) >= 5


@pytest.mark.parametrize("stack", STACKS)
def test_star_resources_only_where_the_api_allows_nothing_narrower(graphs, stack: str) -> None:
    broad = []
    for where, document in documents(graphs[stack]):
        for statement in as_list(document["Statement"]):
            if statement.get("Effect") != "Allow" or "*" not in as_list(
                    statement.get("Resource", [])):
                continue
            for action in as_list(statement.get("Action", [])):
                service = action.split(":")[0]
                if action.lower() not in wildcard_only(service):
                    broad.append(f"{where}: {action} on *")
    assert broad == []


def test_the_checks_catch_what_they_claim() -> None:
    assert action_exists("ec2:RunInstances")
    assert not action_exists("ec2:RunInstance")
    assert "ec2:describeinstances" in wildcard_only("ec2")
    assert "ec2:terminateinstances" not in wildcard_only("ec2")
