"""Render each stack once per session under Pulumi's mocks (no CLI, no cloud)."""

from __future__ import annotations

import pytest

from infra.render import Graph, render


@pytest.fixture(scope="session")
def graphs() -> dict[str, Graph]:
    return {stack: render(stack) for stack in ("dev", "staging", "prod")}
