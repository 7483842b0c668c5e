"""Triton's model configuration and statistics extensions (review #26): the shapes
``tritonclient``'s ``get_model_config`` and ``get_inference_statistics`` read."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.models import SCALE_CONFIG, write_model

INFER = "/v2/models/scale/infer"


def body(rows: int) -> dict:
    return {"inputs": [{"name": "x", "datatype": "FP32", "shape": [rows, 4],
                        "data": [[1.0] * 4] * rows}]}


@pytest.fixture
def client(scale_repository: Path, make_client):
    return make_client(scale_repository)


def test_model_config_in_tritons_field_names(client) -> None:
    response = client.get("/v2/models/scale/config")
    assert response.status_code == 200, response.text
    config = response.json()
    assert config["name"] == "scale"
    assert config["platform"] == "pytorch_libtorch"
    assert config["backend"] == "aiinfra_eager"
    assert config["max_batch_size"] == 8
    assert config["input"] == [{"name": "x", "data_type": "TYPE_FP32", "dims": [4]}]
    assert config["output"] == [{"name": "y", "data_type": "TYPE_FP32", "dims": [4]},
                                {"name": "total", "data_type": "TYPE_FP32", "dims": [1]}]
    assert config["dynamic_batching"] == {
        "max_queue_delay_microseconds": 5000,
        "default_queue_policy": {"max_queue_size": 16, "default_timeout_microseconds": 0,
                                 "timeout_action": "REJECT"}}
    assert config["instance_group"] == [{"name": "scale_0", "count": 1, "kind": "KIND_CPU"}]
    assert config["version_policy"] == {"latest": {"num_versions": 1}}
    assert client.get("/v2/models/scale/versions/1/config").json() == config


def test_config_of_a_model_without_batching_and_all_versions(tmp_path: Path, make_client
                                                             ) -> None:
    root = tmp_path / "repository"
    config = {**SCALE_CONFIG, "max_batch_size": 0, "version_policy": "all",
              "inputs": [{"name": "x", "datatype": "FP32", "dims": [2, 4]}],
              "outputs": [{"name": "y", "datatype": "FP32", "dims": [2, 4]},
                          {"name": "total", "datatype": "FP32", "dims": [2, 1]}]}
    config.pop("max_queue_delay_ms")
    write_model(root, "scale", config)
    served = make_client(root).get("/v2/models/scale/config").json()
    assert served["max_batch_size"] == 0
    assert "dynamic_batching" not in served
    assert served["input"] == [{"name": "x", "data_type": "TYPE_FP32", "dims": [2, 4]}]
    assert served["version_policy"] == {"all": {}}


def test_config_errors(client) -> None:
    assert client.get("/v2/models/nope/config").status_code == 404
    assert client.get("/v2/models/scale/versions/9/config").status_code == 404


def test_statistics_count_what_was_served(client) -> None:
    before = time.time() * 1000
    for rows in (1, 3, 3):
        assert client.post(INFER, json=body(rows)).status_code == 200
    bad = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]}
    assert client.post(INFER, json=bad).status_code == 400
    response = client.get("/v2/models/scale/stats")
    assert response.status_code == 200, response.text
    (stats,) = response.json()["model_stats"]
    assert (stats["name"], stats["version"]) == ("scale", "1")
    assert stats["inference_count"] == 7  # rows (Triton counts batch elements)
    assert 1 <= stats["execution_count"] <= 3
    assert stats["last_inference"] >= before
    inference = stats["inference_stats"]
    assert inference["success"]["count"] == 3
    assert inference["success"]["ns"] > 0
    assert inference["fail"]["count"] == 1
    assert inference["queue"]["count"] == 3
    assert inference["compute_infer"]["count"] == 3
    assert inference["compute_infer"]["ns"] > 0
    assert inference["cache_hit"] == {"count": 0, "ns": 0}
    sizes = {b["batch_size"]: b["compute_infer"]["count"] for b in stats["batch_stats"]}
    assert sum(size * count for size, count in sizes.items()) == 7
    assert set(stats["batch_stats"][0]) == {"batch_size", "compute_input", "compute_infer",
                                            "compute_output"}
    everything = client.get("/v2/models/stats").json()["model_stats"]
    assert [(s["name"], s["version"]) for s in everything] == [("scale", "1")]
    assert client.get("/v2/models/scale/versions/1/stats").json()["model_stats"] == [stats]
    assert client.get("/v2/models/nope/stats").status_code == 404
    assert client.get("/v2/models/scale/versions/7/stats").status_code == 404


def test_cache_hits_are_counted_in_statistics(tmp_path: Path, make_client) -> None:
    root = tmp_path / "repository"
    write_model(root, "scale", {**SCALE_CONFIG, "cache": {"enabled": True}})
    client = make_client(root)
    for _ in range(2):
        assert client.post(INFER, json=body(1)).status_code == 200
    (stats,) = client.get("/v2/models/scale/stats").json()["model_stats"]
    assert stats["inference_stats"]["cache_hit"]["count"] == 1
    assert stats["inference_stats"]["cache_miss"]["count"] == 1
    assert stats["inference_count"] == 1  # the hit never reached the model


def test_the_extensions_are_advertised(client) -> None:
    extensions = client.get("/v2").json()["extensions"]
    assert {"model_configuration", "statistics"} <= set(extensions)
