"""The prediction cache without Redis: keys, stored values, the in-process tier, and the
cache on the infer path (hits, partial hits, bypass, versions, models without batching)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson
import pytest
import torch
import xxhash
from fastapi.testclient import TestClient
from pydantic import ValidationError
from torch import nn

from serving.cache.codec import InvalidValue, decode_value, encode_value
from serving.cache.keys import cache_key, request_digest, row_digests
from serving.cache.local import LocalCache
from serving.errors import ModelConfigError
from serving.protocol import HEADER_LENGTH
from serving.repository import load_model_config
from serving.settings import Settings
from tests.support.models import SCALE_CONFIG, write_model

MakeClient = Callable[..., TestClient]
CACHED_CONFIG = {**SCALE_CONFIG, "cache": {"enabled": True, "ttl_s": 60}}
INFER = "/v2/models/scale/infer"


# -- keys ---------------------------------------------------------------------------------
def test_row_digests_hash_each_row_and_match_a_one_row_request() -> None:
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    rows = row_digests(["x"], ["FP32"], [x])
    assert len(set(rows)) == 3
    assert rows[1] == row_digests(["x"], ["FP32"], [x[1:2].copy()])[0]
    # A non-contiguous view hashes like its contiguous copy.
    wide = np.zeros((3, 8), dtype=np.float32)
    wide[:, ::2] = x
    assert row_digests(["x"], ["FP32"], [wide[:, ::2]]) == rows


def test_digest_covers_name_datatype_shape_and_bytes() -> None:
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    base = request_digest(["x"], ["FP32"], [x])
    variants = [
        request_digest(["y"], ["FP32"], [x]),
        request_digest(["x"], ["INT32"], [x.view(np.int32)]),  # same bytes, other datatype
        request_digest(["x"], ["FP32"], [x.reshape(4, 2)]),  # same bytes, other shape
        request_digest(["x"], ["FP32"], [x + 1]),
        request_digest(["x", "z"], ["FP32", "FP32"], [x, x[:0]]),
    ]
    assert len({base, *variants}) == 1 + len(variants)
    assert request_digest(["x"], ["FP32"], [x.copy()]) == base
    assert len(base) == 16


def test_key_names_model_and_version() -> None:
    digest = bytes(range(16))
    key = cache_key("aiinfra:", "mlp", 3, "0123456789abcdef", digest)
    assert key == b"aiinfra:p2:mlp:3:0123456789abcdef:" + digest.hex().encode()
    assert cache_key("aiinfra:", "mlp", 4, "0123456789abcdef", digest) != key


# -- stored values ------------------------------------------------------------------------
def test_value_round_trip_is_a_read_only_view() -> None:
    y = np.arange(4, dtype=np.float32).reshape(1, 4)
    total = np.array([[6.0]], dtype=np.float32)
    value = encode_value([y, total])
    decoded = decode_value(value, [[1, 4], [1, 1]])
    np.testing.assert_array_equal(decoded[0], y)
    np.testing.assert_array_equal(decoded[1], total)
    assert not decoded[0].flags.writeable
    assert decode_value(value, [[-1, 4], [1, -1]])[1].shape == (1, 1)


def _with_header(header: dict, payload: bytes) -> bytes:
    head = orjson.dumps(header)
    return b"AIC1" + len(head).to_bytes(4, "little") + head + payload


GOOD = encode_value([np.ones((1, 4), np.float32), np.ones((1, 1), np.float32)])
PAYLOAD = np.ones(5, np.float32).tobytes()
CHECKSUM = xxhash.xxh3_64_intdigest(PAYLOAD)
GARBAGE = {
    "empty": b"",
    "text": b"hello world, not a prediction",
    "pickle": b"\x80\x04\x95\x10\x00\x00\x00",
    "truncated": GOOD[:-3],
    "extra bytes": GOOD + b"\x00",
    "flipped bit": GOOD[:-1] + bytes([GOOD[-1] ^ 1]),
    "header past end": b"AIC1" + (10_000).to_bytes(4, "little") + b"{}",
    "header not json": b"AIC1" + (3).to_bytes(4, "little") + b"{{{" + PAYLOAD,
    "header not object": _with_header([1, 2], PAYLOAD),  # type: ignore[arg-type]
    "one output": _with_header({"o": [["FP32", [1, 5]]], "h": CHECKSUM}, PAYLOAD),
    "wrong shape": _with_header({"o": [["FP32", [1, 3]], ["FP32", [1, 2]]], "h": CHECKSUM},
                                PAYLOAD),
    "unknown datatype": _with_header({"o": [["FP128", [1, 4]], ["FP32", [1, 1]]],
                                      "h": CHECKSUM}, PAYLOAD),
    "negative dim": _with_header({"o": [["FP32", [-1, 4]], ["FP32", [1, 1]]], "h": CHECKSUM},
                                 PAYLOAD),
    "sizes past end": _with_header({"o": [["FP64", [1, 4]], ["FP32", [1, 1]]], "h": CHECKSUM},
                                   PAYLOAD),
    "wrong checksum": _with_header({"o": [["FP32", [1, 4]], ["FP32", [1, 1]]],
                                    "h": CHECKSUM ^ 1}, PAYLOAD),
}


@pytest.mark.parametrize("value", GARBAGE.values(), ids=GARBAGE.keys())
def test_anything_unexpected_is_refused(value: bytes) -> None:
    with pytest.raises(InvalidValue):
        decode_value(value, [[1, 4], [1, 1]])


def test_well_formed_value_is_accepted() -> None:
    value = _with_header({"o": [["FP32", [1, 4]], ["FP32", [1, 1]]], "h": CHECKSUM}, PAYLOAD)
    assert decode_value(value, [[1, 4], [1, 1]])[1].shape == (1, 1)


# -- the in-process tier ------------------------------------------------------------------
def _entry(nbytes: int) -> tuple[np.ndarray]:
    return (np.zeros(nbytes, dtype=np.uint8),)


def test_local_tier_is_lru_bounded_in_bytes() -> None:
    cache = LocalCache(max_bytes=3 * 1300)
    for key in (b"a", b"b", b"c"):
        cache.put(key, _entry(1000), ttl_s=60)
    assert cache.get(b"a") is not None  # a is now the most recently used
    cache.put(b"d", _entry(1000), ttl_s=60)
    assert cache.get(b"b") is None
    assert all(cache.get(k) is not None for k in (b"a", b"c", b"d"))
    assert cache.size <= cache.max_bytes
    cache.put(b"huge", _entry(10_000), ttl_s=60)  # larger than the whole tier: not kept
    assert cache.get(b"huge") is None
    assert len(cache) == 3


def test_local_tier_expires_entries() -> None:
    cache = LocalCache(max_bytes=10_000)
    cache.put(b"short", _entry(10), ttl_s=0.05)
    cache.put(b"long", _entry(10), ttl_s=60)
    time.sleep(0.06)
    assert cache.get(b"short") is None
    assert cache.get(b"long") is not None
    assert len(cache) == 1


# -- config -------------------------------------------------------------------------------
def test_cache_is_off_unless_a_model_opts_in(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(orjson.dumps(SCALE_CONFIG).decode())
    assert load_model_config(path, model_name="scale").cache.enabled is False
    path.write_text(orjson.dumps({**SCALE_CONFIG, "cache": {"enabled": True}}).decode())
    config = load_model_config(path, model_name="scale")
    assert config.cache.enabled is True
    assert config.cache.ttl_s == 300


@pytest.mark.parametrize(("cache", "message"), [
    ({"enabled": True, "ttl_s": 0}, "cache.ttl_s: Input should be greater than 0"),
    ({"enable": True}, "cache.enable: Extra inputs are not permitted"),
])
def test_cache_config_is_validated(tmp_path: Path, cache: dict, message: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(orjson.dumps({**SCALE_CONFIG, "cache": cache}).decode())
    with pytest.raises(ModelConfigError, match=message):
        load_model_config(path, model_name="scale")


# -- on the infer path --------------------------------------------------------------------
@pytest.fixture
def cached_repository(tmp_path: Path) -> Path:
    root = tmp_path / "cached"
    write_model(root, "scale", CACHED_CONFIG)
    return root


def body(rows: list[list[float]], **parameters) -> dict:
    request = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [len(rows), 4],
                           "data": rows}]}
    if parameters:
        request["parameters"] = parameters
    return request


class Meter:
    """Reads the server's own metrics registry."""

    def __init__(self, client: TestClient) -> None:
        self.registry = client.app.state.runtime.metrics.registry

    def __call__(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    def inferences(self) -> float:
        return self("aiinfra_inferences_total", model="scale")

    def hits(self, tier: str = "local") -> float:
        return self("aiinfra_cache_hits_total", model="scale", tier=tier)


def outputs(response) -> dict[str, list]:
    assert response.status_code == 200, response.text
    return {o["name"]: o["data"] for o in response.json()["outputs"]}


def test_repeated_request_is_served_from_the_cache(cached_repository: Path,
                                                    make_client: MakeClient) -> None:
    client = make_client(cached_repository)
    meter = Meter(client)
    first = outputs(client.post(INFER, json=body([[1, 2, 3, 4]])))
    assert meter.inferences() == 1
    assert meter("aiinfra_cache_misses_total", model="scale") == 1
    second = outputs(client.post(INFER, json=body([[1, 2, 3, 4]])))
    assert second == first == {"y": [2.0, 4.0, 6.0, 8.0], "total": [10.0]}
    assert meter.inferences() == 1, "a hit must not run the model"
    assert meter.hits() == 1
    assert meter("aiinfra_cache_lookup_duration_seconds_count", model="scale") == 2
    assert meter("aiinfra_cache_local_bytes") > 0

    # The same values as binary tensors share the key; output selection and binary output
    # apply to cached outputs as to computed ones.
    x = np.array([[1, 2, 3, 4]], dtype=np.float32)
    head = orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4],
                                     "parameters": {"binary_data_size": 16}}],
                         "outputs": [{"name": "total", "parameters": {"binary_data": True}}]})
    response = client.post(INFER, content=head + x.tobytes(),
                           headers={HEADER_LENGTH: str(len(head))})
    assert response.status_code == 200, response.text
    length = int(response.headers[HEADER_LENGTH])
    assert orjson.loads(response.content[:length])["outputs"][0]["name"] == "total"
    assert np.frombuffer(response.content[length:], "<f4").tolist() == [10.0]
    assert meter.inferences() == 1
    assert meter.hits() == 2


def test_rows_are_cached_one_by_one(cached_repository: Path, make_client: MakeClient) -> None:
    client = make_client(cached_repository)
    meter = Meter(client)
    a, b, c = [1, 1, 1, 1], [2, 2, 2, 2], [3, 3, 3, 3]
    outputs(client.post(INFER, json=body([a, b])))
    assert meter.inferences() == 2
    mixed = outputs(client.post(INFER, json=body([b, c, a, c])))
    assert mixed["y"] == [4.0] * 4 + [6.0] * 4 + [2.0] * 4 + [6.0] * 4
    assert mixed["total"] == [8.0, 12.0, 4.0, 12.0]
    assert meter.inferences() == 4, "only the two rows of c were computed"
    assert meter.hits() == 2
    assert meter("aiinfra_cache_misses_total", model="scale") == 4


def test_request_parameter_bypasses_the_cache(cached_repository: Path,
                                              make_client: MakeClient) -> None:
    client = make_client(cached_repository)
    meter = Meter(client)
    outputs(client.post(INFER, json=body([[1, 2, 3, 4]])))
    outputs(client.post(INFER, json=body([[1, 2, 3, 4]], cache=False)))
    assert meter.inferences() == 2
    assert meter.hits() == 0
    refused = client.post(INFER, json=body([[1, 2, 3, 4]], cache="no"))
    assert refused.status_code == 400
    assert refused.json() == {"error": "parameter 'cache' must be true or false"}


def test_models_that_do_not_opt_in_are_never_cached(scale_repository: Path,
                                                     make_client: MakeClient) -> None:
    client = make_client(scale_repository)
    meter = Meter(client)
    for _ in range(2):
        outputs(client.post(INFER, json=body([[1, 2, 3, 4]])))
    assert meter.inferences() == 2
    assert meter("aiinfra_cache_lookup_duration_seconds_count", model="scale") == 0


class Triple(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x * 3, x.sum(dim=1, keepdim=True)


def test_a_new_version_never_serves_an_old_versions_predictions(
        tmp_path: Path, make_client: MakeClient) -> None:
    root = tmp_path / "versions"
    config = {**CACHED_CONFIG, "version_policy": "all"}
    write_model(root, "scale", config, module=Triple(), version=1)
    write_model(root, "scale", config, version=2)
    client = make_client(root)
    meter = Meter(client)
    old = client.post("/v2/models/scale/versions/1/infer", json=body([[1, 1, 1, 1]]))
    assert outputs(old)["y"] == [3.0] * 4
    new = client.post(INFER, json=body([[1, 1, 1, 1]]))
    assert new.json()["model_version"] == "2"
    assert outputs(new)["y"] == [2.0] * 4
    assert meter.hits() == 0
    again = client.post("/v2/models/scale/versions/1/infer", json=body([[1, 1, 1, 1]]))
    assert outputs(again)["y"] == [3.0] * 4
    assert meter.hits() == 1


def test_model_without_batching_has_one_key_per_request(tmp_path: Path,
                                                        make_client: MakeClient) -> None:
    root = tmp_path / "flat"
    write_model(root, "flat", {
        "backend": "eager", "max_batch_size": 0, "cache": {"enabled": True},
        "inputs": [{"name": "x", "datatype": "FP32", "dims": [2, 4]}],
        "outputs": [{"name": "y", "datatype": "FP32", "dims": [2, 4]},
                    {"name": "total", "datatype": "FP32", "dims": [2, 1]}]})
    client = make_client(root)
    request = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 4],
                           "data": [[1] * 4, [2] * 4]}]}
    first = client.post("/v2/models/flat/infer", json=request)
    second = client.post("/v2/models/flat/infer", json=request)
    assert outputs(first) == outputs(second)
    assert outputs(second)["total"] == [4.0, 8.0]
    registry = client.app.state.runtime.metrics.registry
    assert registry.get_sample_value("aiinfra_inferences_total", {"model": "flat"}) == 1
    assert registry.get_sample_value("aiinfra_cache_hits_total",
                                     {"model": "flat", "tier": "local"}) == 1


def test_local_tier_can_be_turned_off(cached_repository: Path, make_client: MakeClient) -> None:
    client = make_client(cached_repository, cache_local_max_bytes=0)
    meter = Meter(client)
    for _ in range(2):
        outputs(client.post(INFER, json=body([[1, 2, 3, 4]])))
    assert meter.inferences() == 2
    assert meter("aiinfra_cache_misses_total", model="scale") == 2


# -- settings -----------------------------------------------------------------------------
@pytest.mark.parametrize(("field", "value", "message"), [
    ("redis_url", "http://user:s3cret@cache:6379", "AIINFRA_REDIS_URL must start with redis://"),
    ("database_url", "mysql://user:s3cret@db/app",
     "AIINFRA_DATABASE_URL must start with postgresql://"),
])
def test_store_urls_are_checked_and_never_echoed(field: str, value: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as error:
        Settings(**{field: value})
    assert "s3cret" not in str(error.value)


def test_store_urls_are_optional_and_secret() -> None:
    settings = Settings(redis_url="", database_url="postgresql://u:pw@db:5432/app")
    assert settings.redis_dsn is None
    assert settings.database_dsn == "postgresql://u:pw@db:5432/app"
    assert "pw" not in repr(settings)


def test_a_replaced_artifact_never_serves_the_old_artifacts_predictions(
        tmp_path: Path, make_client: MakeClient) -> None:
    """Review #11: the key named model and version only, so replacing ``1/model.pt2`` (or
    changing backend or precision) kept serving the old model's predictions from the cache."""
    root = tmp_path / "replaced"
    write_model(root, "scale", CACHED_CONFIG)
    client = make_client(root, repository_control=True, control_token="t" * 32)
    meter = Meter(client)
    assert outputs(client.post(INFER, json=body([[1, 1, 1, 1]])))["y"] == [2.0] * 4
    write_model(root, "scale", CACHED_CONFIG, module=Triple())  # same version, new weights
    loaded = client.post("/v2/repository/models/scale/load",
                         headers={"Authorization": "Bearer " + "t" * 32})
    assert loaded.status_code == 200, loaded.text
    assert outputs(client.post(INFER, json=body([[1, 1, 1, 1]])))["y"] == [3.0] * 4
    assert meter.hits() == 0
    assert outputs(client.post(INFER, json=body([[1, 1, 1, 1]])))["y"] == [3.0] * 4
    assert meter.hits() == 1


def test_the_key_names_what_computed_the_prediction() -> None:
    """The model's fingerprint (artifact bytes, backend, precision, declared tensors) is in
    every key: one changed, no key is shared."""
    digest = request_digest(["x"], ["FP32"], [np.zeros((1, 4), np.float32)])
    keys = {cache_key("aiinfra:", "mlp", 1, fingerprint, digest)
            for fingerprint in ("a" * 16, "b" * 16)}
    assert len(keys) == 2
    assert all(b":1:" in key for key in keys)


def test_the_fingerprint_covers_artifact_backend_precision_and_tensors(tmp_path: Path) -> None:
    from serving.cache.keys import model_fingerprint  # noqa: PLC0415

    artifact = tmp_path / "model.pt2"
    artifact.write_bytes(b"weights-1")
    config = load_model_config_dict(tmp_path, SCALE_CONFIG)
    base = model_fingerprint(artifact, config, "eager")
    assert base == model_fingerprint(artifact, config, "eager")
    assert model_fingerprint(artifact, config, "compile") != base
    fp16 = load_model_config_dict(tmp_path, {**SCALE_CONFIG, "precision": "fp16"})
    assert model_fingerprint(artifact, fp16, "eager") != base
    wider = load_model_config_dict(tmp_path, {**SCALE_CONFIG, "outputs": [
        {"name": "y", "datatype": "FP64", "dims": [4]},
        {"name": "total", "datatype": "FP32", "dims": [1]}]})
    assert model_fingerprint(artifact, wider, "eager") != base
    artifact.write_bytes(b"weights-2")
    assert model_fingerprint(artifact, config, "eager") != base


def load_model_config_dict(directory: Path, config: dict):
    import yaml  # noqa: PLC0415

    path = directory / "scale" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return load_model_config(path, model_name="scale")
