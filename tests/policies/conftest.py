"""Rendered stacks, once per session: the three real ones and the deliberately bad fixture."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.render import Graph, render

BAD_STACK_DIR = Path(__file__).parent / "fixtures" / "bad-stack"


@pytest.fixture(scope="session")
def stack_graphs() -> dict[str, Graph]:
    return {stack: render(stack) for stack in ("dev", "staging", "prod")}


@pytest.fixture(scope="session")
def bad_graph() -> Graph:
    return render("bad", BAD_STACK_DIR)
