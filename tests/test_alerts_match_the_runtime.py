"""The alert rules and the KEDA queries the platform deploys name metrics, and label values,
that the serving runtime really exports: a renamed metric would leave an alert that never
fires."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry

from infra.components.autoscaling import scaled_object_spec
from infra.components.monitoring import ALERTS
from infra.config import Serving
from serving.metrics import ServingMetrics


def exported() -> set[str]:
    registry = CollectorRegistry()
    ServingMetrics(registry)
    names = set()
    for family in registry.collect():
        names.add(family.name)
        names |= {sample.name for sample in family.samples}
        if family.type == "histogram":
            names |= {f"{family.name}_{suffix}" for suffix in ("bucket", "sum", "count")}
        if family.type == "counter":
            names.add(f"{family.name}_total")
    return names


def named(expression: str) -> set[str]:
    return set(re.findall(r"\baiinfra_[a-z_]+", expression))


def test_every_alert_names_an_exported_metric() -> None:
    known = exported()
    for rule in ALERTS:
        assert named(rule["expr"]) <= known, rule["alert"]
    assert "aiinfra_model_load_failures_total" in known


def test_every_scaling_query_names_an_exported_metric() -> None:
    spec = scaled_object_spec(Serving(), namespace="serving", app="aiinfra-serving")
    queries = [t["metadata"]["query"] for t in spec["triggers"]]
    assert queries
    for query in queries:
        assert named(query), query
        assert named(query) <= exported(), query
