"""One body reader and one error renderer for every route; the error classes are the contract."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from serving import errors
from serving.app import create_app
from serving.errors import ClientDisconnected, PayloadTooLarge, ServingError
from serving.metrics import ServingMetrics
from serving.predlog.records import status_of
from serving.routes.body import declared_length, read_body
from serving.routes.repository import INDEX_BODY_LIMIT
from serving.settings import Settings

TOKEN = "t" * 32


def receiving(*chunks: bytes, disconnect: bool = False):
    """An ASGI ``receive`` that hands out ``chunks`` (then a disconnect, if asked)."""
    messages = [{"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
                for i, chunk in enumerate(chunks)]
    if disconnect:
        messages[-1]["more_body"] = True
        messages.append({"type": "http.disconnect"})
    taken: list[dict] = []

    async def receive() -> dict:
        taken.append(messages[len(taken)])
        return taken[-1]

    receive.taken = taken
    return receive


# -- the body reader ------------------------------------------------------------------------
async def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    receive = receiving(b"x" * 10)
    with pytest.raises(PayloadTooLarge, match="of 11 bytes is over the 10-byte limit"):
        await read_body(receive, 10, declared=11)
    assert receive.taken == []


@pytest.mark.parametrize("declared", [None, 4])
async def test_a_body_outgrowing_the_limit_is_refused_whatever_it_declared(declared) -> None:
    receive = receiving(b"x" * 6, b"x" * 6, b"x" * 6)
    with pytest.raises(PayloadTooLarge, match="over the 10-byte limit"):
        await read_body(receive, 10, declared=declared)
    assert len(receive.taken) == 2  # refused on the chunk that crossed it, not at the end


async def test_chunks_are_joined_and_a_departed_client_is_told_apart() -> None:
    assert await read_body(receiving(b"ab", b"", b"cd"), 10) == b"abcd"
    assert await read_body(receiving(b"abcd"), 4, declared=4) == b"abcd"
    with pytest.raises(ClientDisconnected):
        await read_body(receiving(b"ab", disconnect=True), 10)


@pytest.mark.parametrize(("raw", "expected"), [
    (b"12", 12), ("0", 0), (None, None), (b"", None), (b"-1", None), (b"1e3", None),
    ("١٢".encode(), None), ("²", None), (b" 12", None)])
def test_declared_length_takes_plain_ascii_decimals_only(raw, expected) -> None:
    assert declared_length(raw) == expected


# -- routes ---------------------------------------------------------------------------------
@pytest.fixture
def control_app(scale_repository: Path, tmp_path: Path):
    """A started app with repository control on; server errors come back as responses."""
    settings = Settings(model_repository=scale_repository, engine_cache_dir=tmp_path / "engines",
                        log_format="text", gc_freeze=False, repository_control=True,
                        control_token=TOKEN)
    with TestClient(create_app(settings, ServingMetrics()),
                    raise_server_exceptions=False) as client:
        yield client


def asgi_post(client: TestClient, path: str, headers: dict[str, str], *chunks: bytes
              ) -> tuple[int, bytes]:
    """POST ``chunks`` straight to the ASGI app, with exactly ``headers`` (no client fixes
    up Content-Length)."""
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "client": ("127.0.0.1", 50000),
             "server": ("127.0.0.1", 80),
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
    client.portal.call(client.app, scope, receiving(*chunks), send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], b"".join(m.get("body", b"") for m in sent
                                      if m["type"] == "http.response.body")


def test_the_index_route_enforces_the_limit_whatever_content_length_says(control_app) -> None:
    # Valid JSON, padded past the limit, under a Content-Length that claims 15 bytes.
    body = b'{"ready": true}' + b" " * INDEX_BODY_LIMIT
    status, content = asgi_post(control_app, "/v2/repository/index",
                                {"content-length": "15", "authorization": f"Bearer {TOKEN}",
                                 "host": "test"}, body[:15], body[15:])
    assert status == 413, content
    assert content == (b'{"error":"request body is over the 65536-byte limit '
                       b'(AIINFRA_MAX_REQUEST_BYTES)"}')


def test_the_infer_fast_path_enforces_the_same_limit(control_app) -> None:
    limit = control_app.app.state.runtime.settings.max_request_bytes
    status, content = asgi_post(control_app, "/v2/models/scale/infer",
                                {"content-length": "2", "host": "test"}, b"{}", b" " * limit)
    assert status == 413
    assert content == (f'{{"error":"request body is over the {limit}-byte limit '
                       '(AIINFRA_MAX_REQUEST_BYTES)"}').encode()


def test_an_unexpected_error_in_any_route_is_a_json_500(control_app, monkeypatch) -> None:
    registry = control_app.app.state.runtime.registry

    def broken(**_) -> None:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(registry, "index", broken)
    response = control_app.post("/v2/repository/index", headers={
        "Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": "internal error; see the server log"}


def test_both_front_ends_render_an_error_alike(control_app) -> None:
    fast = control_app.post("/v2/models/nope/infer", json={"inputs": []})
    routed = control_app.get("/v2/models/nope")
    for response in (fast, routed):
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/json"
        assert set(response.json()) == {"error"}
    wrong_method = control_app.get("/v2/models/scale/infer")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "POST"
    assert wrong_method.json() == {"error": "infer takes POST"}


# -- the error classes ----------------------------------------------------------------------
def error_classes() -> list[type[ServingError]]:
    return [value for value in vars(errors).values() if isinstance(value, type)
            and issubclass(value, ServingError) and value is not ServingError]


def test_the_documented_contract_is_the_classes() -> None:
    rows = re.findall(r"^\| (\w+) +\| ([\d /]+?) +\| ([\w-]+) +\| (\w+) +\|$",
                      errors.__doc__, re.MULTILINE)
    documented = {name: (status, reason, log) for name, status, reason, log in rows}
    actual = {cls.__name__: (str(cls.status) if not issubclass(cls, errors.Overloaded)
                             else "503 / 429",
                             cls.reason or "-", cls.log_status) for cls in error_classes()}
    assert documented == actual


def test_the_prediction_log_status_comes_from_the_error() -> None:
    assert status_of(None) == "ok"
    assert status_of(ValueError("boom")) == "error"
    for cls in error_classes():
        error = (cls("message") if not issubclass(cls, errors.Overloaded)
                 else cls("full", status=429))
        assert status_of(error) == cls.log_status
