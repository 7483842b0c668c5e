"""Cost per inference at run time: the recording rules parsed as PromQL (promql-parser, the
Prometheus grammar), their joins and selectors, the prices written into them, the Grafana
panels, and ``aiinfra cost --per-1m --from-prometheus`` against a stand-in Prometheus."""

from __future__ import annotations

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, HTTPServer

import promql_parser
import pytest
from typer.testing import CliRunner

from aiinfra.cli import app
from infra.cost.runtime import IDLE_COST, MODEL_COST, NODE_LABELS_ALLOWLIST, PER_MILLION
from infra.cost.runtime_cli import MEASURED_THROUGHPUT
from infra.render import Graph
from infra.render import render as real_render
from serving.metrics import ServingMetrics

EXPORTED = {  # kube-state-metrics series the rules read
    "kube_node_labels", "kube_node_status_allocatable", "kube_pod_container_resource_requests"}


def _one(graph: Graph, type_token: str, name: str):
    (resource,) = [r for r in graph.of_type(type_token) if r.name == name]
    return resource


def rules(graph: Graph) -> list[dict]:
    spec = _one(graph, "kubernetes:monitoring.coreos.com/v1:PrometheusRule",
                f"aiinfra-{graph.stack}-monitoring-cost-rules").inputs["spec"]
    return [rule for group in spec["groups"] for rule in group["rules"]]


def walk(node):
    yield node
    for attr in ("lhs", "rhs", "expr", "param", "vector_selector"):
        child = getattr(node, attr, None)
        if child is not None and not isinstance(child, str | int | float):
            yield from walk(child)
    for arg in getattr(node, "args", None) or []:
        yield from walk(arg)


def selectors(expr: str) -> set[str]:
    return {str(n).removesuffix("{}") for n in walk(promql_parser.parse(expr))
            if isinstance(n, promql_parser.VectorSelector)}


def joins(expr: str) -> list[str]:
    return [str(n.modifier) for n in walk(promql_parser.parse(expr))
            if isinstance(n, promql_parser.BinaryExpr) and n.modifier is not None
            and n.modifier.matching is not None]


SUFFIXES = {"counter": ("_total",), "histogram": ("_sum", "_count", "_bucket"),
            "gauge": ("",)}


def serving_metric_names() -> set[str]:
    """The series names the runtime exports (a labelled family has no samples until used)."""
    return {family.name + suffix for family in ServingMetrics().registry.collect()
            for suffix in SUFFIXES.get(family.type, ("",))}


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_rule_is_promql_and_reads_only_what_exists(graphs, stack) -> None:
    defined: set[str] = set()
    exported = EXPORTED | serving_metric_names()
    for rule in rules(graphs[stack]):
        tree = promql_parser.parse(rule["expr"])  # raises on a syntax error
        assert promql_parser.parse(tree.prettify()).prettify() == tree.prettify()
        for node in walk(tree):
            if isinstance(node, promql_parser.VectorSelector):
                assert node.name in defined or node.name in exported, (rule["record"], node)
        defined.add(rule["record"])
    assert {PER_MILLION, IDLE_COST} <= defined


def test_the_rules_join_what_the_formula_says(graphs) -> None:
    by = {}
    for rule in rules(graphs["prod"]):
        by.setdefault(rule["record"], rule)
    node = by["aiinfra:node_cost_usd_per_hour"]["expr"]
    # kube_node_labels carries the node labels; the price joins on type and capacity
    assert joins(node) == ["on (instance_type, capacity_type) group_left ()"]
    for source, target in (("label_node_kubernetes_io_instance_type", "instance_type"),
                           ("label_karpenter_sh_capacity_type", "capacity_type"),
                           ("label_aiinfra_io_pool", "pool")):
        assert f'"{target}", "$1", "{source}"' in node
    assert joins(by["aiinfra:node_gpu_cost_usd_per_hour"]["expr"]) == [
        "on (node) group_left ()"]
    pod = by["aiinfra:pod_gpu_cost_usd_per_hour"]["expr"]
    assert selectors(pod) == {'kube_pod_container_resource_requests{resource="nvidia_com_gpu",'
                              'namespace="aiinfra"}', "aiinfra:node_gpu_cost_usd_per_hour"}
    assert joins(by["aiinfra:model_compute_share"]["expr"]) == [
        "on (namespace, pod) group_left ()"]
    assert joins(by[MODEL_COST]["expr"]) == ["on (namespace, pod) group_left ()"]
    per_million = by[PER_MILLION]["expr"]
    assert selectors(per_million) == {MODEL_COST, 'aiinfra_inferences_total{namespace='
                                      '"aiinfra"}'}
    assert per_million.endswith("* 3600) * 1e6")
    assert "on (node) group_left (pool)" in joins(by[IDLE_COST]["expr"])


def test_prices_are_the_catalogues_per_type_and_capacity(graphs) -> None:
    prices = {(r["labels"]["instance_type"], r["labels"]["capacity_type"]): r["expr"]
              for r in rules(graphs["prod"]) if r["record"] == "aiinfra:node_price_usd_per_hour"}
    assert prices == {
        ("g6.2xlarge", "reserved"): "vector(0.63642)",   # l4-reserved, 1yr no upfront
        ("g6.2xlarge", "on-demand"): "vector(0.9776)",   # its fallback, and l4-burst
        ("g6.4xlarge", "on-demand"): "vector(1.3232)",
        ("g6.xlarge", "spot"): "vector(0.5375)", ("g6.2xlarge", "spot"): "vector(0.8792)",
        ("g6.4xlarge", "spot"): "vector(0.6713)", ("g5.2xlarge", "spot"): "vector(1.0236)",
        ("g5.4xlarge", "spot"): "vector(0.9008)"}


def test_the_dashboard_and_the_node_labels_are_in_the_prod_graph(graphs) -> None:
    graph = graphs["prod"]
    dashboard = json.loads(_one(graph, "kubernetes:core/v1:ConfigMap",
                                "aiinfra-prod-monitoring-cost-dashboard").inputs["data"][
        "aiinfra-cost.json"])
    panels = {p["title"]: p["targets"][0]["expr"] for p in dashboard["panels"]}
    assert panels["Cost per 1M inferences by model (USD, measured)"] == \
        f"sum by (model) ({PER_MILLION})"
    assert panels["Idle GPU cost by pool (USD/h)"] == f"sum by (pool) ({IDLE_COST})"
    for expr in panels.values():
        promql_parser.parse(expr)
    release = _one(graph, "kubernetes:helm.sh/v3:Release",
                   "aiinfra-prod-monitoring-kube-prometheus-stack")
    assert release.inputs["values"]["kube-state-metrics"]["metricLabelsAllowlist"] == [
        NODE_LABELS_ALLOWLIST]


class _Prometheus(BaseHTTPRequestHandler):
    answers: dict[str, list] = {}

    def do_GET(self) -> None:  # noqa: N802 - the handler's name
        expr = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)["query"][0]
        result = self.answers.get(expr)
        body = ({"status": "success", "data": {"resultType": "vector", "result": result}}
                if result is not None else {"status": "error", "error": "unknown query"})
        payload = json.dumps(body).encode()
        self.send_response(200 if result is not None else 400)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def prometheus():
    def vector(label: str, values: dict[str, float]) -> list:
        return [{"metric": {label: k} if k else {}, "value": [1764633600, str(v)]}
                for k, v in values.items()]

    _Prometheus.answers = {
        PER_MILLION: vector("model", {"mlp": 2.887625, "resnet18": 1.8663194}),
        MODEL_COST: vector("model", {"mlp": 1.039545, "resnet18": 0.134375}),
        IDLE_COST: vector("pool", {"l4-burst": 0.9776}),
        MEASURED_THROUGHPUT: vector("", {"": 50.0}),
    }
    server = HTTPServer(("127.0.0.1", 0), _Prometheus)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def runner(graphs, monkeypatch) -> CliRunner:
    monkeypatch.setattr("infra.render.render", lambda stack, root=None: graphs[stack]
                        if root is None and stack in graphs else real_render(stack, root))
    return CliRunner()


def test_per_1m_compares_the_estimate_with_prometheus(runner, prometheus) -> None:
    result = runner.invoke(app, ["cost", "prod", "--per-1m", "--from-prometheus", prometheus,
                                 "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["measured"]["usd_per_million_by_model"] == {"mlp": 2.887625,
                                                            "resnet18": 1.8663194}
    assert data["measured"]["idle_gpu_usd_per_hour_by_pool"] == {"l4-burst": 0.9776}
    estimate = data["estimate"]
    assert estimate["throughput_source"].startswith("measured: 50.0 inferences/s per GPU")
    # the usage file's 8 replicas: 5 reserved-pool nodes (4 × 0.63642 reserved + 1 × 0.9776)
    # and 3 spot g6.xlarge (0.75 × 0.5375 + 0.25 × 0.8048), each serving 50/s
    spend = 4 * 0.63642 + 0.9776 + 3 * (0.75 * 0.5375 + 0.25 * 0.8048)
    assert estimate["blended_usd_per_million"] == pytest.approx(spend / (8 * 50 * 3600) * 1e6)
    markdown = runner.invoke(app, ["cost", "prod", "--per-1m", "--from-prometheus",
                                   prometheus, "--format", "markdown"])
    assert markdown.exit_code == 0, markdown.output
    ratio = 2.887625 / estimate["blended_usd_per_million"]
    assert f"| mlp | $2.8876 | $1.0395 | {ratio:.2f}× the estimate |" in markdown.stdout
    assert "Idle GPU cost: l4-burst $0.9776/h" in markdown.stdout


def test_per_1m_errors(runner) -> None:
    unreachable = runner.invoke(app, ["cost", "prod", "--per-1m", "--from-prometheus",
                                      "http://127.0.0.1:9"])
    assert unreachable.exit_code == 2
    assert "cannot query Prometheus at http://127.0.0.1:9" in unreachable.output
    none = runner.invoke(app, ["cost", "prod", "--per-1m"])
    assert none.exit_code == 2
    assert "--per-1m needs a throughput" in none.output
    alone = runner.invoke(app, ["cost", "prod", "--from-prometheus", "http://x"])
    assert alone.exit_code == 2
    assert "add --per-1m" in alone.output
    stated = runner.invoke(app, ["cost", "prod", "--per-1m", "--throughput-per-node", "100"])
    assert stated.exit_code == 0, stated.output
    assert "cost per 1M inferences" in stated.output
