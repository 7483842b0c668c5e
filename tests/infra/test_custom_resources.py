"""Custom resources against the CRD schema of the chart version that installs them, and Helm
values against the chart version's own ``values.yaml`` (vendored under ``schemas/``)."""

from __future__ import annotations

import copy

import jsonschema
import pytest

from infra.preview import k8s_objects
from tests.infra.charts import (
    CRDS_FROM,
    chart_dir,
    chart_of,
    chart_yaml,
    crd_schema,
    installer,
    releases,
    values_of,
)

STACKS = ["dev", "staging", "prod"]


def strict(schema: dict) -> dict:
    """``schema`` with unknown fields refused wherever the CRD lists the fields (the API
    server would prune them silently: a typo would vanish instead of taking effect)."""
    schema = copy.deepcopy(schema)

    def tighten(node: object) -> None:
        if isinstance(node, dict):
            if ("properties" in node and "additionalProperties" not in node
                    and not node.get("x-kubernetes-preserve-unknown-fields")):
                node["additionalProperties"] = False
            for value in node.values():
                tighten(value)
        elif isinstance(node, list):
            for value in node:
                tighten(value)

    tighten(schema)
    return schema


@pytest.mark.parametrize("stack", STACKS)
def test_custom_resources_match_the_crds_their_chart_installs(graphs, stack: str) -> None:
    graph = graphs[stack]
    checked, errors = 0, []
    for body in k8s_objects(graph):
        group, _, version = body["apiVersion"].rpartition("/")
        if group not in CRDS_FROM:
            continue
        directory = chart_dir(installer(graph, group))
        schema = crd_schema(directory, group, body["kind"], version)
        name = f"{body['kind']} {body['metadata']['name']}"
        if schema is None:
            errors.append(f"{name}: no {group}/{version} CRD vendored in {directory.name}")
            continue
        validator = jsonschema.Draft202012Validator(strict(schema))
        errors += [f"{name}: {error.message} at {'.'.join(map(str, error.absolute_path))}"
                   for error in validator.iter_errors(body)]
        checked += 1
    assert errors == []
    assert checked >= 2  # the serving ServiceMonitor and PrometheusRule at least


# Kubernetes maps every chart passes through whole (label selectors, labels, annotations),
# whatever keys its values.yaml shows as defaults.
FREE_MAPS = {"nodeSelector", "labels", "annotations", "podLabels", "podAnnotations",
             "additionalLabels", "matchLabels"}
# Maps one chart passes through whole, whatever keys its values.yaml shows as examples.
FREE_FORM = {
    "cluster-autoscaler": {"extraArgs"},  # each key becomes a --flag (templates/deployment)
}


def unknown_keys(given: object, known: object, path: str = "",
                 free: frozenset[str] = frozenset()) -> list[str]:
    """Paths in ``given`` (release values) that the chart's ``values.yaml`` does not have.
    A map the chart leaves empty (``nodeSelector: {}``) or passes through is free-form."""
    if (not isinstance(given, dict) or not isinstance(known, dict) or not known
            or path in free):
        return []
    problems = []
    for key, value in given.items():
        where = f"{path}.{key}" if path else key
        if key not in known:
            problems.append(where)
        elif key not in FREE_MAPS:
            problems += unknown_keys(value, known[key], where, free)
    return problems


def merged(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = merged(out[key], value) if isinstance(out.get(key), dict) and isinstance(
            value, dict) else value
    return out


def known_values(directory) -> dict:
    """A chart version's values, with each vendored subchart's (``charts/<name>/``) under
    its name, as Helm passes them down."""
    known = values_of(directory)
    for sub in sorted((directory / "charts").glob("*/values.yaml")):
        name = sub.parent.name
        known = {**known, name: merged(values_of(sub.parent), known.get(name) or {})}
    return known


@pytest.mark.parametrize("stack", STACKS)
def test_every_release_sets_only_values_its_chart_version_has(graphs, stack: str) -> None:
    graph = graphs[stack]
    problems = []
    for release in releases(graph):
        directory = chart_dir(release)
        if not (directory / "values.yaml").is_file():
            problems.append(f"{release.name}: vendor {directory.name}/values.yaml")
            continue
        assert chart_yaml(directory)["name"] == directory.name.rsplit("-", 1)[0]
        free = frozenset(FREE_FORM.get(chart_of(release), ()))
        problems += [f"{release.name}: {key}"
                     for key in unknown_keys(release.inputs.get("values") or {},
                                             known_values(directory), free=free)]
    assert problems == []


def test_an_unknown_values_key_is_reported() -> None:
    known = {"a": {"b": 1, "c": {}}, "extraArgs": {"v": 2},
             "nodeSelector": {"kubernetes.io/os": "linux"}}
    given = {"a": {"b": 2, "c": {"anything": 1}, "typo": 3}, "extraArgs": {"flag": 1},
             "missing": {}, "nodeSelector": {"aiinfra.io/pool": "system"}}
    assert unknown_keys(given, known) == ["a.typo", "extraArgs.flag", "missing"]
    assert unknown_keys(given, known, free=frozenset({"extraArgs"})) == ["a.typo", "missing"]


def version_tuple(text: str) -> tuple[int, ...]:
    core = text.strip().lstrip("v").split("-")[0]
    return tuple(int(part) for part in core.split("."))


def admits(constraint: str, version: str) -> bool:
    """Whether a Helm ``kubeVersion`` constraint (comparisons joined by spaces or commas:
    all must hold; ``||`` between alternatives) admits ``version``."""
    wanted = version_tuple(version)
    operators = {">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
                 "<": lambda a, b: a < b, "=": lambda a, b: a == b, "!=": lambda a, b: a != b}
    for alternative in constraint.split("||"):
        parts = alternative.replace(",", " ").replace(">= ", ">=").replace("<= ", "<=").split()
        ok = True
        for part in parts:
            operator = next(o for o in (">=", "<=", "!=", ">", "<", "=", "") if part.startswith(o))
            bound = version_tuple(part[len(operator):])
            size = len(bound)
            ok &= operators[operator or "="](wanted[:size] + (0,) * (size - len(wanted)), bound)
        if ok:
            return True
    return False


def test_kube_version_constraints_read_as_helm_does() -> None:
    assert admits(">= 1.16-0", "1.35")
    assert admits(">=v1.23.0-0", "1.35.0")
    assert not admits(">=1.25.0-0 <1.30.0-0", "1.35")
    assert admits("<1.20.0-0 || >=1.30.0-0", "1.35")


# Charts that declare no kubeVersion, and the range their project documents instead.
DOCUMENTED_SUPPORT = {
    # Karpenter's compatibility matrix (karpenter.sh, "Upgrading: Compatibility"): 1.14.x
    # supports Kubernetes 1.26 to 1.36 (see schemas/README.md).
    "karpenter": ">=1.26.0-0 <1.37.0-0",
}


@pytest.mark.parametrize("stack", STACKS)
def test_every_chart_version_supports_the_cluster_version(graphs, stack: str) -> None:
    graph = graphs[stack]
    refused = []
    for release in releases(graph):
        chart = chart_yaml(chart_dir(release))
        constraint = chart.get("kubeVersion") or DOCUMENTED_SUPPORT.get(chart["name"])
        if constraint and not admits(constraint, graph.config.cluster_version):
            refused.append(f"{release.name}: {chart['name']} wants {constraint}")
    assert refused == []
