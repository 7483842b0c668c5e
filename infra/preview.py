"""``aiinfra preview``: the rendered graph as a table or JSON, and Kubernetes manifests."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

from infra.render import Graph, Resource

_K8S = re.compile(r"^kubernetes:(?P<group>[^:]+):(?P<kind>[A-Za-z]+)$")


def k8s_objects(graph: Graph) -> list[dict]:
    """Every Kubernetes object in the graph as a manifest (Helm releases excluded)."""
    objects = []
    for resource in graph.resources:
        match = _K8S.match(resource.type)
        if match is None or match["group"] == "helm.sh/v3":
            continue
        group = match["group"]
        api_version = group.removeprefix("core/") if group.startswith("core/") else group
        body = {"apiVersion": resource.inputs.get("apiVersion", api_version),
                "kind": resource.inputs.get("kind", match["kind"])}
        body.update({k: v for k, v in resource.inputs.items() if k not in ("apiVersion", "kind")})
        objects.append(body)
    return objects


def write_manifests(graph: Graph, directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for body in k8s_objects(graph):
        metadata = body.get("metadata", {})
        namespace = metadata.get("namespace", "cluster")
        path = directory / f"{namespace}-{body['kind'].lower()}-{metadata.get('name')}.yaml"
        path.write_text(yaml.safe_dump(body, sort_keys=False))
        written.append(path)
    return written


def _component(resource: Resource, by_name: dict[str, Resource]) -> str:
    while resource.parent and resource.parent in by_name:
        resource = by_name[resource.parent]
    return resource.name


def print_table(graph: Graph, console: Console | None = None) -> None:
    if console is None:
        console = Console()
        # Type tokens and names are long: never cut them when output is piped or narrow.
        console = Console(width=max(console.width, 150))
    components = {r.name: r for r in graph.resources if r.type.startswith("aiinfra:")}
    table = Table(title=f"aiinfra · stack {graph.stack} · {len(graph.resources)} resources")
    for column in ("component", "type", "name"):
        table.add_column(column)
    rows = sorted((_component(resource, components), resource.type, resource.name)
                  for resource in graph.resources if not resource.type.startswith("aiinfra:"))
    for row in rows:
        table.add_row(*row)
    console.print(table)
    counts = Counter(r.type.split(":")[0] for r in graph.resources
                     if not r.type.startswith("aiinfra:"))
    console.print("resources by provider: " + ", ".join(f"{k} {v}" for k, v in
                                                         sorted(counts.items())))


def print_json(graph: Graph) -> None:
    print(json.dumps(graph.as_dict(), indent=2, sort_keys=False))
