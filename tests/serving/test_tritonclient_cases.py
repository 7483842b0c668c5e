"""What Triton's own HTTP client sees when it gives up, or when its timeout passes while its
batch is computing: a real uvicorn on loopback (in this process, so that the model can be
held at a gate) driven by ``tritonclient.http``."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from bench.process import free_port
from serving.app import create_app
from serving.metrics import ServingMetrics
from serving.settings import Settings
from tests.support.servers import serving_in_thread

tritonhttp = pytest.importorskip("tritonclient.http")

WAIT_S = 20


@pytest.fixture
def live(scale_repository: Path, tmp_path: Path):
    """(address, app) of a started server; its model's forward waits for ``app.gate``."""
    port = free_port()
    settings = Settings(model_repository=scale_repository, engine_cache_dir=tmp_path / "e",
                        log_format="text", gc_freeze=False, port=port)
    app = create_app(settings, ServingMetrics())
    with serving_in_thread(app, port):
        runtime = app.state.runtime
        backend = runtime.registry.loaded("scale").batcher(None)._instances[0]
        app.gate, app.entered, app.seen = threading.Event(), threading.Event(), []
        forward = backend.forward

        def gated(arrays):
            app.seen.append(arrays[0].copy())
            app.entered.set()
            assert app.gate.wait(WAIT_S)
            return forward(arrays)

        backend.forward = gated
        yield f"127.0.0.1:{port}", app
        app.gate.set()


def _infer(address: str, value: float, **options):
    client = tritonhttp.InferenceServerClient(address, connection_timeout=WAIT_S,
                                              network_timeout=options.pop("network", WAIT_S))
    try:
        x = np.full((1, 4), value, dtype=np.float32)
        infer_input = tritonhttp.InferInput("x", [1, 4], "FP32")
        infer_input.set_data_from_numpy(x)
        return client.infer("scale", [infer_input], **options).as_numpy("y")
    finally:
        client.close()


def _sample(app, name: str, **labels) -> float:
    return app.state.runtime.metrics.registry.get_sample_value(name, labels) or 0.0


def test_a_client_that_gives_up_is_counted_cancelled_and_never_computed(live) -> None:
    address, app = live
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(_infer, address, 1.0)
        assert app.entered.wait(WAIT_S)  # the only instance is busy with the first request
        with pytest.raises(Exception):  # noqa: B017, PT011 - the client's own timeout error
            _infer(address, 500.0, network=0.5)  # gives up while queued behind it
        deadline = time.monotonic() + WAIT_S
        while _sample(app, "aiinfra_inference_requests_total", model="scale",
                      outcome="cancelled", protocol="http") < 1:
            assert time.monotonic() < deadline, "the server never noticed the client leave"
            time.sleep(0.02)
        app.gate.set()
        np.testing.assert_array_equal(first.result(WAIT_S), np.full((1, 4), 2.0))
    assert all(batch[0, 0] != 500.0 for batch in app.seen), "the abandoned request ran"
    assert _sample(app, "aiinfra_inferences_total", model="scale") == 1


def test_a_request_whose_batch_is_running_when_its_timeout_passes_is_answered(live) -> None:
    """Triton's semantics: the timeout bounds queueing; a batch that started runs and is
    answered."""
    address, app = live
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(_infer, address, 3.0, timeout=200_000)  # 200 ms, in µs
        assert app.entered.wait(WAIT_S)
        time.sleep(0.5)  # well past the request's timeout, while its batch computes
        app.gate.set()
        np.testing.assert_array_equal(answer.result(WAIT_S), np.full((1, 4), 6.0))
    assert _sample(app, "aiinfra_inference_requests_total", model="scale",
                   outcome="success", protocol="http") == 1
