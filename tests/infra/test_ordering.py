"""Ordering the real API server needs: nothing that is, or renders, a custom resource starts
before the release that installs its CRD ("no matches for kind ..." otherwise)."""

from __future__ import annotations

import pytest

from infra.render import Resource
from tests.infra.charts import CRDS_FROM, api_group, installer, releases, waits_for

STACKS = ["dev", "staging", "prod"]


def renders_custom_resources(release: Resource) -> set[str]:
    """API groups a release's chart renders objects of, with the values it is given."""
    values = release.inputs.get("values") or {}
    groups = set()
    if (values.get("serviceMonitor") or {}).get("enabled"):
        groups.add("monitoring.coreos.com")
    return groups


@pytest.mark.parametrize("stack", STACKS)
def test_custom_resources_wait_for_their_crds(graphs, stack: str) -> None:
    graph = graphs[stack]
    late = []
    for resource in graph.resources:
        group = api_group(resource)
        if group in CRDS_FROM and not waits_for(graph, resource, installer(graph, group)):
            late.append(resource.name)
    assert late == []


@pytest.mark.parametrize("stack", STACKS)
def test_charts_that_render_custom_resources_wait_for_their_crds(graphs, stack: str) -> None:
    graph = graphs[stack]
    late = []
    for release in releases(graph):
        for group in renders_custom_resources(release):
            crds = installer(graph, group)
            if release is not crds and not waits_for(graph, release, crds):
                late.append(f"{release.name} renders {group} before {crds.name}")
    assert late == []
