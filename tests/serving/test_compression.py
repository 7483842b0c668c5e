"""Compressed infer requests and responses (review #27), as tritonclient's
``request_compression_algorithm`` / ``response_compression_algorithm`` send and expect."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import orjson
import pytest

INFER = "/v2/models/scale/infer"
BODY = orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 4],
                                 "data": [[1, 2, 3, 4], [5, 6, 7, 8]]}]})
EXPECTED = {"y": [2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0, 16.0], "total": [10.0, 26.0]}


def outputs(content: bytes) -> dict:
    return {o["name"]: o["data"] for o in orjson.loads(content)["outputs"]}


@pytest.fixture
def client(scale_repository: Path, make_client):
    return make_client(scale_repository, max_request_bytes=4096)


@pytest.mark.parametrize(("encoding", "compress"), [
    ("gzip", gzip.compress),
    ("deflate", zlib.compress),  # HTTP's deflate is the zlib format (RFC 9110 §8.4.1.2)
    ("deflate", lambda b: zlib.compress(b)[2:-4]),  # raw deflate, as some clients send
    ("identity", lambda b: b),
    ("GZip", gzip.compress),
])
def test_compressed_requests_are_inflated(client, encoding: str, compress) -> None:
    response = client.post(INFER, content=compress(BODY),
                           headers={"Content-Encoding": encoding})
    assert response.status_code == 200, response.text
    assert outputs(response.content) == EXPECTED


def test_an_unknown_encoding_is_415(client) -> None:
    response = client.post(INFER, content=BODY, headers={"Content-Encoding": "br"})
    assert response.status_code == 415
    assert response.json() == {"error": "Content-Encoding 'br' is not supported: send gzip, "
                                        "deflate or identity"}
    assert response.headers["accept-encoding"] == "gzip, deflate"


def test_a_body_that_does_not_inflate_is_400(client) -> None:
    response = client.post(INFER, content=b"not gzip at all",
                           headers={"Content-Encoding": "gzip"})
    assert response.status_code == 400
    assert response.json()["error"].startswith("request body is not valid gzip")
    truncated = client.post(INFER, content=gzip.compress(BODY)[:-12],
                            headers={"Content-Encoding": "gzip"})
    assert truncated.status_code == 400


def test_the_size_limit_applies_after_inflation(client) -> None:
    """A small compressed body that inflates past AIINFRA_MAX_REQUEST_BYTES is refused as
    it inflates, never held whole (a compression bomb)."""
    bomb = gzip.compress(b" " * 3_000_000)
    assert len(bomb) < 4096
    response = client.post(INFER, content=bomb, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert response.json() == {"error": "request body inflates to over the 4096-byte limit "
                                        "(AIINFRA_MAX_REQUEST_BYTES)"}


@pytest.mark.parametrize(("accept", "encoding"), [
    ("gzip", "gzip"),
    ("deflate", "deflate"),
    ("deflate, gzip;q=0.5", "deflate"),
    ("gzip;q=1.0, deflate;q=0.9", "gzip"),
    ("br;q=1, gzip;q=0.1", "gzip"),
])
def test_responses_are_compressed_when_asked(client, accept: str, encoding: str) -> None:
    response = client.post(INFER, content=BODY, headers={"Accept-Encoding": accept})
    assert response.status_code == 200
    assert response.headers["content-encoding"] == encoding
    assert response.headers["vary"] == "Accept-Encoding"
    # httpx inflated the body by its Content-Encoding: it would raise on anything else.
    assert outputs(response.content) == EXPECTED
    assert int(response.headers["content-length"]) == response.num_bytes_downloaded


@pytest.mark.parametrize("accept", ["", "identity", "br", "gzip;q=0", "*;q=0"])
def test_responses_stay_plain_otherwise(client, accept: str) -> None:
    response = client.post(INFER, content=BODY, headers={"Accept-Encoding": accept})
    assert response.status_code == 200
    assert "content-encoding" not in response.headers
    assert outputs(response.content) == EXPECTED

