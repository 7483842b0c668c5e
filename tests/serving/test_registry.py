"""Model lifecycle: lazy loading, LRU eviction that spares busy models, unload/load, and the
repository control endpoints with their bearer-token guard."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from fastapi.testclient import TestClient
from pydantic import ValidationError

from serving.errors import ModelNotFound, ModelNotReady
from serving.metrics import ServingMetrics
from serving.registry import ModelRegistry
from serving.repository import ModelRepository
from serving.settings import Settings
from tests.support.models import SCALE_CONFIG

MakeClient = Callable[..., TestClient]
TOKEN = "x" * 32
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ROW = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}


def add_copies(root: Path, *names: str) -> Path:
    """More models in ``root``: copies of "scale" under other names."""
    for name in names:
        shutil.copytree(root / "scale", root / name)
    return root


def add_broken(root: Path) -> Path:
    """A model with a config but no version directory: it can never load."""
    (root / "broken").mkdir()
    (root / "broken" / "config.yaml").write_text(yaml.safe_dump(SCALE_CONFIG))
    return root / "broken"


def infer(client: TestClient, model: str):
    return client.post(f"/v2/models/{model}/infer", json=ROW)


def assert_infers(client: TestClient, model: str) -> None:
    response = infer(client, model)
    assert response.status_code == 200, response.text
    assert response.json()["model_name"] == model
    assert response.json()["outputs"][0]["data"] == [2.0, 4.0, 6.0, 8.0]


def is_ready(client: TestClient, model: str) -> bool:
    response = client.get(f"/v2/models/{model}/ready")
    assert response.status_code in (200, 503)
    ready = response.json()["ready"]
    assert (response.status_code == 200) is ready
    return ready


# -- lazy loading and LRU eviction -------------------------------------------------------------


def test_lazy_load_on_first_infer(scale_repository: Path, make_client: MakeClient) -> None:
    client = make_client(scale_repository, load_models=[])
    assert client.get("/v2/health/ready").json() == {"ready": True}  # ready with nothing loaded
    assert is_ready(client, "scale") is False
    metadata = client.get("/v2/models/scale")  # metadata comes from config.yaml, no load
    assert metadata.status_code == 200
    assert metadata.json()["platform"] == "aiinfra"
    assert is_ready(client, "scale") is False

    assert_infers(client, "scale")
    assert is_ready(client, "scale") is True
    assert client.get("/v2/models/scale").json()["platform"] == "aiinfra_eager"


def test_lru_eviction_and_lazy_reload(scale_repository: Path, make_client: MakeClient) -> None:
    add_copies(scale_repository, "other")
    client = make_client(scale_repository, load_models=[], max_loaded_models=1)
    assert_infers(client, "scale")
    assert (is_ready(client, "scale"), is_ready(client, "other")) == (True, False)

    assert_infers(client, "other")  # loading a second model evicts the first
    assert (is_ready(client, "scale"), is_ready(client, "other")) == (False, True)

    assert_infers(client, "scale")  # and it comes back lazily on its next request
    assert (is_ready(client, "scale"), is_ready(client, "other")) == (True, False)


def test_startup_loads_respect_max_loaded_models(scale_repository: Path,
                                                 make_client: MakeClient) -> None:
    add_copies(scale_repository, "other")
    client = make_client(scale_repository, max_loaded_models=1)  # load_models=["*"]
    # Loaded in name order: "other" first, then "scale", which evicts it.
    assert (is_ready(client, "other"), is_ready(client, "scale")) == (False, True)


def test_startup_loads_only_matching_models(scale_repository: Path,
                                            make_client: MakeClient) -> None:
    add_copies(scale_repository, "scale-b", "other")
    client = make_client(scale_repository, load_models=["scale*"])
    assert [is_ready(client, m) for m in ("scale", "scale-b", "other")] == [True, True, False]


@pytest.fixture
def registry_factory(tmp_path: Path):
    registries: list[ModelRegistry] = []

    def make(root: Path, **overrides) -> ModelRegistry:
        settings = Settings(model_repository=root, engine_cache_dir=tmp_path / "engines",
                            load_models=[], **overrides)
        registry = ModelRegistry(ModelRepository(root), settings, ServingMetrics())
        registries.append(registry)
        return registry

    yield make
    for registry in registries:
        assert registry.index(ready_only=True) == [], "left loaded: call registry.close()"


async def _run(model, rows: int = 1) -> list[np.ndarray]:
    x = np.arange(4 * rows, dtype=np.float32).reshape(rows, 4)
    return await model.batcher(None).infer([x], None)


async def test_model_in_use_is_never_evicted(scale_repository: Path, registry_factory) -> None:
    add_copies(scale_repository, "other", "third")
    registry = registry_factory(scale_repository, max_loaded_models=1)
    try:
        async with asyncio.timeout(20):  # a regression fails, never hangs
            async with registry.use("scale") as scale:
                async with registry.use("other") as other:
                    # Over the limit, but "scale" has a request in flight: both stay loaded.
                    assert registry.loaded("scale") is scale
                    assert registry.loaded("other") is other
                    assert not scale.draining
                    y, total = await _run(scale)
                    np.testing.assert_array_equal(y, [[0, 2, 4, 6]])
                # "other" is idle now; "scale" is still busy and still loaded.
                assert registry.loaded("scale") is scale
                assert scale.in_flight == 1
            assert scale.in_flight == 0
            assert {r["name"] for r in registry.index(ready_only=True)} == {"scale", "other"}

            # With everything idle, the next load evicts down to the limit, oldest first.
            async with registry.use("third") as third:
                assert registry.loaded("third") is third
                assert registry.loaded("scale") is None
                assert registry.loaded("other") is None
                assert scale.draining
                assert other.draining
    finally:
        await registry.close()


async def test_busy_model_evicted_only_after_its_request(scale_repository: Path,
                                                         registry_factory) -> None:
    add_copies(scale_repository, "other", "third")
    registry = registry_factory(scale_repository, max_loaded_models=2)
    try:
        async with asyncio.timeout(20):  # a regression fails, never hangs
            async with registry.use("scale") as scale:
                await registry.load("other", explicit=False)
                # "scale" is the least recently used but busy: "other" is evicted instead.
                await registry.load("third", explicit=False)
                assert registry.loaded("scale") is scale
                assert registry.loaded("other") is None
                assert registry.loaded("third") is not None
                assert (await _run(scale))[1].tolist() == [[6.0]]
    finally:
        await registry.close()


async def test_a_model_just_loaded_for_a_request_is_not_evicted_before_it_runs(
        scale_repository: Path, registry_factory, monkeypatch) -> None:
    """Review #34: between a lazy load and its request taking hold, the new model had no
    request in flight, so a concurrent load's eviction could retire it under the request."""
    import threading  # noqa: PLC0415

    from serving import registry as registry_module  # noqa: PLC0415

    add_copies(scale_repository, "a", "b")
    registry = registry_factory(scale_repository, max_loaded_models=1)
    release_b = threading.Event()
    real_build = registry_module._build_instances

    def build(repository, settings, name):
        if name == "b":
            assert release_b.wait(20)
        return real_build(repository, settings, name)

    monkeypatch.setattr(registry_module, "_build_instances", build)
    try:
        async with asyncio.timeout(30):  # a regression fails, never hangs
            await registry.load("scale")
            # Retiring "scale" (a's own eviction) takes a while: meanwhile b's load ends.
            (old,) = registry.loaded("scale").batchers.values()
            real_stop = old.stop

            async def slow_stop() -> None:
                release_b.set()
                while registry.loaded("b") is None:
                    await asyncio.sleep(0.01)
                await real_stop()

            monkeypatch.setattr(old, "stop", slow_stop)
            loading_b = asyncio.create_task(registry.load("b", explicit=False))

            async def request_a() -> list[np.ndarray]:
                async with registry.use("a") as model:
                    assert not model.draining, "evicted before its request ran"
                    return await _run(model)

            y, _ = await request_a()
            np.testing.assert_array_equal(y, [[0, 2, 4, 6]])
            await loading_b
    finally:
        await registry.close()


async def test_unload_waits_for_requests_in_flight(scale_repository: Path,
                                                   registry_factory) -> None:
    registry = registry_factory(scale_repository)
    try:
        async with asyncio.timeout(20):  # a regression fails, never hangs
            async with registry.use("scale") as scale:
                unloading = asyncio.create_task(registry.unload("scale"))
                await asyncio.sleep(0.05)
                assert not unloading.done()  # drains: waits for the request in flight
                assert scale.draining
                assert registry.loaded("scale") is None  # no new request gets it
                assert (await _run(scale, rows=2))[0].shape == (2, 4)  # the held one still runs
            await asyncio.wait_for(unloading, 5)
            with pytest.raises(ModelNotReady) as info:
                async with registry.use("scale"):
                    pass
            assert info.value.message == (
                "model 'scale' was unloaded by an operator; "
                "POST /v2/repository/models/scale/load to serve it again")
            await registry.load("scale")
            async with registry.use("scale") as again:
                assert again is not scale
                assert (await _run(again))[0].tolist() == [[0, 2, 4, 6]]
    finally:
        await registry.close()


async def test_unknown_model_is_not_found(scale_repository: Path, registry_factory) -> None:
    registry = registry_factory(scale_repository)
    with pytest.raises(ModelNotFound) as info:
        async with registry.use("nope"):
            pass
    assert info.value.message == "model 'nope' is not in the repository"
    assert registry.loaded("nope") is None


# -- unload and load over HTTP -----------------------------------------------------------------


@pytest.fixture
def control_client(scale_repository: Path, make_client: MakeClient) -> TestClient:
    return make_client(scale_repository, repository_control=True, control_token=TOKEN)


def test_unload_then_request_then_load(control_client: TestClient) -> None:
    client = control_client
    assert_infers(client, "scale")
    response = client.post("/v2/repository/models/scale/unload", headers=AUTH)
    assert (response.status_code, response.json()) == (200, {})
    assert is_ready(client, "scale") is False

    for _ in range(2):  # an unloaded model stays unloaded: no lazy reload
        response = infer(client, "scale")
        assert response.status_code == 503
        assert response.json() == {"error": (
            "model 'scale' was unloaded by an operator; "
            "POST /v2/repository/models/scale/load to serve it again")}
    assert client.get("/v2/health/live").json() == {"live": True}

    response = client.post("/v2/repository/models/scale/load", headers=AUTH)
    assert (response.status_code, response.json()) == (200, {})
    assert is_ready(client, "scale") is True
    assert_infers(client, "scale")


def test_explicit_load_of_a_loaded_model_reloads_it(control_client: TestClient) -> None:
    registry = control_client.app.state.runtime.registry
    before = registry.loaded("scale")
    assert before is not None
    response = control_client.post("/v2/repository/models/scale/load", headers=AUTH)
    assert response.status_code == 200
    after = registry.loaded("scale")
    assert after is not None
    assert after is not before
    assert before.draining
    assert_infers(control_client, "scale")


def test_repository_index_states(scale_repository: Path, make_client: MakeClient) -> None:
    add_copies(scale_repository, "idle")
    broken = add_broken(scale_repository)
    client = make_client(scale_repository, load_models=["scale"], repository_control=True,
                         control_token=TOKEN)

    def index(body: dict | None = None) -> list[dict]:
        response = client.post("/v2/repository/index", headers=AUTH, json=body)
        assert response.status_code == 200, response.text
        return response.json()

    assert index() == [
        {"name": "broken", "version": "", "state": "UNLOADED", "reason": ""},
        {"name": "idle", "version": "", "state": "UNLOADED", "reason": ""},
        {"name": "scale", "version": "1", "state": "READY", "reason": ""},
    ]
    reason = (f"model 'broken' has no version: add {broken}/1/model.pt2 (torch.export) "
              "or model.pt (TorchScript)")
    response = client.post("/v2/repository/models/broken/load", headers=AUTH)
    assert (response.status_code, response.json()) == (
        503, {"error": f"model 'broken' failed to load: {reason}"})
    assert client.post("/v2/repository/models/scale/unload", headers=AUTH).status_code == 200
    assert_infers(client, "idle")

    assert index() == [
        {"name": "broken", "version": "", "state": "UNAVAILABLE", "reason": reason},
        {"name": "idle", "version": "1", "state": "READY", "reason": ""},
        {"name": "scale", "version": "", "state": "UNAVAILABLE", "reason": ""},
    ]
    assert index({"ready": True}) == [
        {"name": "idle", "version": "1", "state": "READY", "reason": ""}]
    assert index({"ready": False}) == index()


def test_repository_control_errors(control_client: TestClient) -> None:
    client = control_client
    for action in ("load", "unload"):
        response = client.post(f"/v2/repository/models/nope/{action}", headers=AUTH)
        assert (response.status_code, response.json()) == (
            404, {"error": "model 'nope' is not in the repository"})
    for body in (b"[1]", b"true", b"{"):
        response = client.post("/v2/repository/index", headers=AUTH, content=body)
        assert (response.status_code, response.json()) == (
            400, {"error": 'index body must be a JSON object like {"ready": true}'})
    assert_infers(client, "scale")


# -- repository control auth -------------------------------------------------------------------

CONTROL_CALLS = [("/v2/repository/index", None), ("/v2/repository/models/scale/load", None),
                 ("/v2/repository/models/scale/unload", None)]


@pytest.mark.parametrize(("path", "_"), CONTROL_CALLS)
def test_repository_control_disabled_by_default(scale_repository: Path, make_client: MakeClient,
                                                path: str, _: None) -> None:
    client = make_client(scale_repository)
    response = client.post(path, headers=AUTH)
    assert response.status_code == 403
    assert response.json() == {"error": (
        "repository control is disabled on this server "
        "(set AIINFRA_REPOSITORY_CONTROL=true and AIINFRA_CONTROL_TOKEN)")}
    assert is_ready(client, "scale") is True  # the unload did not happen
    assert_infers(client, "scale")


@pytest.mark.parametrize("headers", [
    pytest.param({}, id="no-header"),
    pytest.param({"Authorization": "Bearer " + "y" * 32}, id="wrong-token"),
    pytest.param({"Authorization": "Bearer " + TOKEN[:-1]}, id="token-prefix"),
    pytest.param({"Authorization": "Bearer " + TOKEN + "x"}, id="token-longer"),
    pytest.param({"Authorization": "Bearer"}, id="no-token"),
    pytest.param({"Authorization": TOKEN}, id="no-scheme"),
    pytest.param({"Authorization": "Basic " + TOKEN}, id="basic-scheme"),
])
def test_repository_control_needs_the_bearer_token(control_client: TestClient,
                                                   headers: dict[str, str]) -> None:
    for path, _ in CONTROL_CALLS:
        response = control_client.post(path, headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json() == {
            "error": "repository control needs 'Authorization: Bearer <token>'"}
    assert is_ready(control_client, "scale") is True  # nothing was unloaded
    assert_infers(control_client, "scale")


def test_bearer_scheme_is_case_insensitive(control_client: TestClient) -> None:
    response = control_client.post("/v2/repository/index",
                                   headers={"Authorization": f"bearer {TOKEN}"})
    assert response.status_code == 200
    assert response.json()[0]["name"] == "scale"


# -- settings ----------------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AIINFRA_CONTROL_TOKEN", "AIINFRA_REPOSITORY_CONTROL", "AIINFRA_ENVIRONMENT",
                 "AIINFRA_MODEL_REPOSITORY"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize("token", [None, "", "short", "z" * 15])
def test_repository_control_needs_a_long_token(token: str | None) -> None:
    with pytest.raises(ValidationError) as info:
        Settings(repository_control=True, control_token=token)
    [error] = info.value.errors()
    assert error["msg"] == (
        "Value error, AIINFRA_REPOSITORY_CONTROL=true needs AIINFRA_CONTROL_TOKEN of at least "
        "16 characters (e.g. `openssl rand -hex 32`): loading and unloading models is an "
        "operator's act")


@pytest.mark.usefixtures("clean_env")
def test_repository_control_settings_accepted_with_token(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(repository_control=True, control_token="z" * 16)
    assert settings.control_token is not None
    assert settings.control_token.get_secret_value() == "z" * 16
    assert "z" * 16 not in repr(settings)  # a secret, never printed
    monkeypatch.setenv("AIINFRA_REPOSITORY_CONTROL", "true")
    monkeypatch.setenv("AIINFRA_CONTROL_TOKEN", TOKEN)
    from_env = Settings()
    assert from_env.repository_control is True
    assert from_env.control_token.get_secret_value() == TOKEN
    assert Settings(repository_control=False).repository_control is False


@pytest.mark.usefixtures("clean_env")
def test_production_needs_a_model_repository(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="AIINFRA_ENVIRONMENT=production needs "
                                              "AIINFRA_MODEL_REPOSITORY"):
        Settings(environment="production")
    assert Settings(environment="production", model_repository=tmp_path).model_repository == (
        tmp_path)


def test_production_is_not_ready_with_no_model_to_serve(make_client, tmp_path: Path) -> None:
    """An empty repository (the model sync copied nothing) must not pass readiness in
    production: the rollout would 'succeed' serving nothing."""
    empty = tmp_path / "empty"
    empty.mkdir()
    client = make_client(empty, wait_ready=False, environment="production")
    deadline = time.monotonic() + 10
    runtime = client.app.state.runtime
    while runtime.startup_error is None:
        assert time.monotonic() < deadline, "start-up never finished"
        time.sleep(0.02)
    assert client.get("/v2/health/ready").status_code == 503
    assert "no model to serve" in runtime.startup_error
    assert "AIINFRA_LOAD_MODELS" in runtime.startup_error


def test_development_is_ready_with_an_empty_repository(make_client, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    client = make_client(empty)  # waits for ready
    assert client.get("/v2/health/ready").json() == {"ready": True}


def test_a_load_that_raises_anything_leaves_a_reason(make_client, tmp_path: Path) -> None:
    """torch.export's guard (config max_batch_size above the exported range) raises an
    AssertionError: the server must say why it is not ready, not hang silently."""
    from serving.demo import export_model  # noqa: PLC0415
    from tests.support.models import SCALE_CONFIG, Scale  # noqa: PLC0415

    root = tmp_path / "mismatch"
    export_model(Scale(), torch.zeros(2, 4), 8, root / "scale" / "1" / "model.pt2")
    (root / "scale" / "config.yaml").write_text(yaml.safe_dump(
        {**SCALE_CONFIG, "max_batch_size": 16, "warmup": {"batch_sizes": [16]}}))
    client = make_client(root, wait_ready=False)
    runtime = client.app.state.runtime
    deadline = time.monotonic() + 30
    while runtime.startup_error is None:
        assert time.monotonic() < deadline, "start-up never said why it is not ready"
        time.sleep(0.05)
    assert "model 'scale' failed to load" in runtime.startup_error
    assert client.get("/v2/health/ready").status_code == 503
    (row,) = [m for m in runtime.registry.index(ready_only=False) if m["name"] == "scale"]
    assert row["state"] == "UNAVAILABLE"
    assert "Guard failed" in row["reason"]
    # ... and alerts see it: every failed load is counted.
    assert runtime.metrics.registry.get_sample_value(
        "aiinfra_model_load_failures_total", {"model": "scale"}) == 1


def test_a_broken_model_is_not_rebuilt_on_every_request(make_client, tmp_path: Path,
                                                        monkeypatch) -> None:
    """Lazy loads remember a failure: requests within the back-off get 503 with Retry-After at
    once instead of each rebuilding the model (for TensorRT, an engine build)."""
    from serving import registry as registry_module  # noqa: PLC0415
    from serving.demo import export_model  # noqa: PLC0415
    from tests.support.models import SCALE_CONFIG, Scale  # noqa: PLC0415

    root = tmp_path / "broken"
    export_model(Scale(), torch.zeros(2, 4), 8, root / "scale" / "1" / "model.pt2")
    (root / "scale" / "config.yaml").write_text(yaml.safe_dump(
        {**SCALE_CONFIG, "max_batch_size": 16, "warmup": {"batch_sizes": [16]}}))
    builds: list[str] = []
    real = registry_module._build_instances

    def counted(*args):
        builds.append(args[-1])
        return real(*args)

    monkeypatch.setattr(registry_module, "_build_instances", counted)
    client = make_client(root, load_models=[], load_retry_s=60)
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1] * 4}]}
    first = client.post("/v2/models/scale/infer", json=body)
    assert first.status_code == 503
    assert "failed to load" in first.json()["error"]
    again = [client.post("/v2/models/scale/infer", json=body) for _ in range(3)]
    assert builds == ["scale"]  # one build, not four
    for response in again:
        assert response.status_code == 503
        assert "failed to load" in response.json()["error"]
        assert 0 < int(response.headers["retry-after"]) <= 60


async def test_a_load_that_takes_too_long_fails_with_a_reason(scale_repository: Path,
                                                             registry_factory,
                                                             monkeypatch) -> None:
    """Review #29: a first request to a model whose build hangs (a TensorRT build, a stuck
    download) waited forever on the model lock."""
    from serving import registry as registry_module  # noqa: PLC0415
    from serving.errors import ModelNotReady  # noqa: PLC0415

    real_build = registry_module._build_instances

    def slow(*args):
        time.sleep(1.5)
        return real_build(*args)

    monkeypatch.setattr(registry_module, "_build_instances", slow)
    registry = registry_factory(scale_repository, load_timeout_s=0.2)
    try:
        started = time.monotonic()
        with pytest.raises(ModelNotReady, match=r"model 'scale' failed to load: loading took "
                                                r"longer than 0.2 s \(AIINFRA_LOAD_TIMEOUT_S\)"):
            async with registry.use("scale"):
                pass
        assert time.monotonic() - started < 1.0
        assert registry.loaded("scale") is None
        assert registry.index()[0]["state"] == "UNAVAILABLE"
        await asyncio.sleep(1.6)  # the abandoned build ends; what it built is dropped
        assert registry.loaded("scale") is None
    finally:
        await registry.close()


async def test_a_drain_that_hangs_is_cut_off(scale_repository: Path, registry_factory,
                                             monkeypatch) -> None:
    """A hung forward blocked unload (and so reload and shutdown) forever: the drain is
    bounded, and what still waits is answered 503."""
    from serving.errors import ModelNotReady  # noqa: PLC0415

    registry = registry_factory(scale_repository, drain_timeout_s=0.3)
    try:
        async with asyncio.timeout(20):
            model = await registry.load("scale")
            (batcher,) = model.batchers.values()
            (backend,) = batcher._instances
            release = threading.Event()
            real_forward = backend.forward

            def hung(arrays):
                release.wait(10)
                return real_forward(arrays)

            monkeypatch.setattr(backend, "forward", hung)

            async def request():
                async with registry.use("scale") as held:
                    return await _run(held)

            waiting = asyncio.create_task(request())
            await asyncio.sleep(0.2)  # the forward is running (and hung)
            started = time.monotonic()
            await registry.unload("scale")
            assert time.monotonic() - started < 2.0
            with pytest.raises(ModelNotReady, match="model 'scale' did not drain within "
                                                    r"0.3 s \(AIINFRA_DRAIN_TIMEOUT_S\)"):
                await waiting
            release.set()
    finally:
        await registry.close()


async def test_an_evicted_model_is_not_built_again_beside_itself(scale_repository: Path,
                                                                 registry_factory,
                                                                 monkeypatch) -> None:
    """A request for a model still stopping after its eviction waits for it to be gone:
    never two copies of one model on one GPU."""
    from serving import registry as registry_module  # noqa: PLC0415

    add_copies(scale_repository, "other")
    registry = registry_factory(scale_repository, max_loaded_models=1)
    events: list[str] = []
    real_build = registry_module._build_instances

    def build(repository, settings, name):
        events.append(f"build {name}")
        return real_build(repository, settings, name)

    monkeypatch.setattr(registry_module, "_build_instances", build)
    try:
        async with asyncio.timeout(30):
            scale = await registry.load("scale")
            (batcher,) = scale.batchers.values()
            real_stop = batcher.stop

            async def slow_stop() -> None:
                await asyncio.sleep(0.5)
                await real_stop()
                events.append("scale stopped")

            monkeypatch.setattr(batcher, "stop", slow_stop)
            evicting = asyncio.create_task(registry.load("other"))  # evicts "scale"
            while "build other" not in events or registry.loaded("scale") is not None:
                await asyncio.sleep(0.01)
            async with registry.use("scale") as again:
                assert again is not scale
            await evicting
            assert events.index("scale stopped") < events.index("build scale", 1)
    finally:
        await registry.close()


async def test_warm_up_times_are_the_batchers_first_service_times(scale_repository: Path,
                                                                  registry_factory) -> None:
    """A model just loaded (a new replica scaled up under load, say) can judge its first
    burst: its warm-up forwards, timed, are its first service times. Unmeasured, it admitted
    everything up to the queue bound (128 requests: 8 batches of resnet18, far past a 1 s
    deadline)."""
    registry = registry_factory(scale_repository)
    try:
        async with asyncio.timeout(20), registry.use("scale") as scale:
            times = scale.batcher(None).service_times
            sizes = scale.config.warmup_batch_sizes
            assert sizes
            assert sorted(times.snapshot()) == sorted(sizes)
            assert all(0 < seconds < 5 for seconds in times.snapshot().values())
            assert times.batches == 0  # nothing yet about how large batches will be
    finally:
        await registry.close()
