"""Cost per inference at run time: Prometheus recording rules and a Grafana dashboard.

The preview's cost per 1M inferences is an estimate; these rules measure it from what the
cluster runs. Each GPU node's hourly price comes from the catalogue by its instance type and
capacity type (the node labels ``node.kubernetes.io/instance-type`` and
``karpenter.sh/capacity-type``, exported by kube-state-metrics as ``kube_node_labels``),
written into the rules when the stack is deployed:

1. ``aiinfra:node_price_usd_per_hour{instance_type, capacity_type}``: one constant series per
   type and capacity the stack's GPU pools may launch (spot, on-demand, reserved at the
   pool's RI term);
2. ``aiinfra:node_cost_usd_per_hour{node, instance_type, capacity_type, pool}``: that price
   joined onto each running node;
3. ``aiinfra:node_gpu_cost_usd_per_hour``: a node's price over its allocatable GPUs;
4. ``aiinfra:pod_gpu_cost_usd_per_hour{namespace, pod}``: a serving pod's GPUs × that;
5. ``aiinfra:model_compute_share{namespace, pod, model}``: a model's share of its pod's GPU
   time (backend compute seconds, ``aiinfra_compute_duration_seconds``);
6. ``aiinfra:model_cost_usd_per_hour{model}``: Σ over pods of share × the pod's GPU cost;
7. ``aiinfra:model_cost_usd_per_million_inferences{model}``: that over the model's inference
   rate (``aiinfra_inferences_total``) × 3600 × 10⁶;
8. ``aiinfra:pool_idle_gpu_cost_usd_per_hour{pool}``: the GPUs no pod requests, at their
   node's per-GPU price.

``aiinfra cost STACK --per-1m --from-prometheus URL`` reads (7) back and sets it beside the
preview's estimate.
"""

from __future__ import annotations

from dataclasses import dataclass

from infra.config import StackConfig
from infra.cost.catalogue import Catalogue

SERVING_NAMESPACE = "aiinfra"
WINDOW = "5m"
GPU_RESOURCE = 'resource="nvidia_com_gpu"'
# kube-state-metrics exports only the node labels it is allowed to (values of the
# kube-prometheus-stack chart): the ones the rules join on.
NODE_LABELS_ALLOWLIST = ("nodes=[node.kubernetes.io/instance-type,karpenter.sh/capacity-type,"
                         "aiinfra.io/pool]")
PER_MILLION = "aiinfra:model_cost_usd_per_million_inferences"
MODEL_COST = "aiinfra:model_cost_usd_per_hour"
IDLE_COST = "aiinfra:pool_idle_gpu_cost_usd_per_hour"


@dataclass(frozen=True)
class NodePrice:
    instance_type: str
    capacity_type: str
    usd: float
    key: str


def node_prices(config: StackConfig, catalogue: Catalogue) -> tuple[list[NodePrice], list[str]]:
    """The hourly price of every (instance type, capacity type) the GPU pools may launch,
    and the keys the catalogue has no price for (those nodes count in no cost series)."""
    wanted: dict[tuple[str, str], str] = {}
    for pool in config.gpu_pools:
        for t in pool.instance_types:
            if pool.capacity == "spot":
                wanted[(t, "spot")] = f"ec2/spot/{t}"
            elif pool.capacity == "reserved":
                wanted[(t, "reserved")] = f"ec2/reserved-{pool.reserved_term}/{t}"
                wanted[(t, "on-demand")] = f"ec2/on-demand/{t}"  # its fallback capacity
            else:
                wanted[(t, "on-demand")] = f"ec2/on-demand/{t}"
    prices, missing = [], []
    for (instance_type, capacity), key in sorted(wanted.items()):
        usd = catalogue.usd(key)
        if usd is None:
            missing.append(key)
        else:
            prices.append(NodePrice(instance_type, capacity, usd, key))
    return prices, missing


def _node_labels() -> str:
    """``kube_node_labels`` with the node labels renamed to the rules' label names."""
    expr = "kube_node_labels"
    for target, source in (("instance_type", "label_node_kubernetes_io_instance_type"),
                           ("capacity_type", "label_karpenter_sh_capacity_type"),
                           ("pool", "label_aiinfra_io_pool")):
        expr = f'label_replace({expr}, "{target}", "$1", "{source}", "(.+)")'
    return expr


def recording_rules(config: StackConfig, catalogue: Catalogue) -> list[dict]:
    """The PrometheusRule groups: the prices (constants), then the cost series."""
    prices, _ = node_prices(config, catalogue)
    allocatable = f"max by (node) (kube_node_status_allocatable{{{GPU_RESOURCE}}})"
    requested = (f"sum by (node) (kube_pod_container_resource_requests{{{GPU_RESOURCE}}})")
    compute = (f'rate(aiinfra_compute_duration_seconds_sum{{namespace="{SERVING_NAMESPACE}"}}'
               f"[{WINDOW}])")
    price_rules = [{"record": "aiinfra:node_price_usd_per_hour", "expr": f"vector({p.usd!r})",
                    "labels": {"instance_type": p.instance_type,
                               "capacity_type": p.capacity_type}}
                   for p in prices]
    cost_rules = [
        {"record": "aiinfra:node_cost_usd_per_hour",
         "expr": (f"max by (node, instance_type, capacity_type, pool) ({_node_labels()}) "
                  "* on (instance_type, capacity_type) group_left () "
                  "max by (instance_type, capacity_type) (aiinfra:node_price_usd_per_hour)")},
        {"record": "aiinfra:node_gpu_cost_usd_per_hour",
         "expr": f"aiinfra:node_cost_usd_per_hour / on (node) group_left () {allocatable}"},
        {"record": "aiinfra:pod_gpu_cost_usd_per_hour",
         "expr": ("sum by (namespace, pod, node) (kube_pod_container_resource_requests{"
                  f'{GPU_RESOURCE}, namespace="{SERVING_NAMESPACE}"}}) '
                  "* on (node) group_left (pool, instance_type, capacity_type) "
                  "aiinfra:node_gpu_cost_usd_per_hour")},
        {"record": "aiinfra:model_compute_share",
         "expr": (f"sum by (namespace, pod, model) ({compute}) / on (namespace, pod) "
                  f"group_left () sum by (namespace, pod) ({compute})")},
        {"record": MODEL_COST,
         "expr": ("sum by (model) (aiinfra:model_compute_share * on (namespace, pod) "
                  "group_left () sum by (namespace, pod) (aiinfra:pod_gpu_cost_usd_per_hour))")},
        {"record": PER_MILLION,
         "expr": (f"{MODEL_COST} / on (model) (sum by (model) (rate(aiinfra_inferences_total{{"
                  f'namespace="{SERVING_NAMESPACE}"}}[{WINDOW}])) * 3600) * 1e6')},
        {"record": IDLE_COST,
         "expr": (f"sum by (pool) (clamp_min({allocatable} - on (node) ({requested} or "
                  f"{allocatable} * 0), 0) * on (node) group_left (pool) "
                  "aiinfra:node_gpu_cost_usd_per_hour)")},
    ]
    source = f"catalogue {catalogue.region}, prices as of {catalogue.as_of.isoformat()}"
    # prices every minute too: a constant series evaluated less often than Prometheus's 5 m
    # lookback would drop out of the joins now and then
    return [{"name": "aiinfra-cost-prices", "interval": "1m", "rules": price_rules,
             "source": source},
            {"name": "aiinfra-cost", "interval": "1m", "rules": cost_rules}]


def prometheus_rule_spec(config: StackConfig, catalogue: Catalogue) -> dict:
    """``spec`` of the PrometheusRule: the groups without the bookkeeping keys."""
    return {"groups": [{k: v for k, v in group.items() if k != "source"}
                       for group in recording_rules(config, catalogue)]}


def cost_dashboard() -> dict:
    """The Grafana dashboard of the measured cost: per model, and the idle GPUs per pool."""
    panels = [
        ("Cost per 1M inferences by model (USD, measured)", f"sum by (model) ({PER_MILLION})",
         "currencyUSD"),
        ("GPU cost by model (USD/h)", f"sum by (model) ({MODEL_COST})", "currencyUSD"),
        ("Idle GPU cost by pool (USD/h)", f"sum by (pool) ({IDLE_COST})", "currencyUSD"),
        ("GPU node cost by pool and capacity (USD/h)",
         "sum by (pool, capacity_type) (aiinfra:node_cost_usd_per_hour)", "currencyUSD"),
    ]
    return {
        "title": "aiinfra cost", "uid": "aiinfra-cost", "schemaVersion": 39,
        "time": {"from": "now-24h", "to": "now"}, "refresh": "1m",
        "panels": [{"id": i + 1, "type": "timeseries", "title": title,
                    "gridPos": {"x": (i % 2) * 12, "y": (i // 2) * 8, "w": 12, "h": 8},
                    "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                    "targets": [{"expr": expr, "refId": "A"}]}
                   for i, (title, expr, unit) in enumerate(panels)],
    }
