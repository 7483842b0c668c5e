"""The vendored chart data under ``tests/infra/schemas/`` (values and CRDs per chart
version) and the graph helpers the real-schema tests share."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path

import yaml

from infra.render import Graph, Resource

SCHEMAS = Path(__file__).resolve().parent / "schemas"
# The chart whose release installs each API group's CRDs.
CRDS_FROM = {"monitoring.coreos.com": "kube-prometheus-stack", "karpenter.sh": "karpenter",
             "karpenter.k8s.aws": "karpenter", "keda.sh": "keda"}


def chart_of(release: Resource) -> str:
    return release.inputs["chart"].rsplit("/", 1)[-1]


def chart_dir(release: Resource) -> Path:
    """The vendored files of the chart version ``release`` installs."""
    return SCHEMAS / f"{chart_of(release)}-{release.inputs['version']}"


def releases(graph: Graph) -> list[Resource]:
    return graph.of_type("kubernetes:helm.sh/v3:Release")


def installer(graph: Graph, group: str) -> Resource:
    """The release that installs ``group``'s CRDs in this graph."""
    (release,) = [r for r in releases(graph) if chart_of(r) == CRDS_FROM[group]]
    return release


def api_group(resource: Resource) -> str:
    """A Kubernetes resource's API group (``core`` for the core group); '' for others."""
    if not resource.type.startswith("kubernetes:"):
        return ""
    return resource.type.split(":")[1].split("/")[0]


@cache
def _documents(path: Path) -> tuple:
    return tuple(doc for doc in yaml.safe_load_all(path.read_text()) if doc)


def values_of(directory: Path) -> dict:
    return _documents(directory / "values.yaml")[0]


def chart_yaml(directory: Path) -> dict:
    return _documents(directory / "Chart.yaml")[0]


def patched(directory: Path, crd: dict) -> dict:
    """``crd`` as its project's build installs it: with the JSON patch vendored beside it as
    ``<singular>_patch.yaml`` applied (KEDA's kustomization patches the ScaledObject CRD)."""
    patch = directory / f"{crd['spec']['names']['singular']}_patch.yaml"
    if not patch.is_file():
        return crd
    crd = copy.deepcopy(crd)
    for operation in _documents(patch)[0]:
        if operation["op"] not in ("add", "replace"):
            raise ValueError(f"{patch.name}: unsupported patch op {operation['op']!r}")
        *parents, last = [part.replace("~1", "/").replace("~0", "~")
                          for part in operation["path"].split("/")[1:]]
        node = crd
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if isinstance(node, list):
            raise ValueError(f"{patch.name}: patching into a list is not supported")
        if operation["op"] == "replace" and last not in node:
            raise ValueError(f"{patch.name}: nothing to replace at {operation['path']}")
        node[last] = copy.deepcopy(operation["value"])
    return crd


def crd_schema(directory: Path, group: str, kind: str, version: str) -> dict | None:
    """The ``openAPIV3Schema`` of ``group/version`` ``kind`` among ``directory``'s CRDs,
    patched as the chart installs it."""
    for path in sorted(directory.glob("*.yaml")):
        for doc in _documents(path):
            if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            if spec["group"] != group or spec["names"]["kind"] != kind:
                continue
            for served in patched(directory, doc)["spec"]["versions"]:
                if served["name"] == version and served.get("served", True):
                    return served["schema"]["openAPIV3Schema"]
    return None


def waits_for(graph: Graph, resource: Resource, other: Resource) -> bool:
    """Whether ``resource`` waits for ``other``, directly or through others."""
    return other.urn in {r.urn for r in graph.waits_for(resource)}
