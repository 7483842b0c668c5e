"""Content codings on the infer route: inflating ``Content-Encoding: gzip | deflate`` request
bodies within the size limit, and compressing responses a client's ``Accept-Encoding`` asks
for (tritonclient's ``request_compression_algorithm`` / ``response_compression_algorithm``)."""

from __future__ import annotations

import zlib

from serving.errors import InvalidInput, PayloadTooLarge, UnsupportedEncoding

CODINGS = ("gzip", "deflate")
_GZIP, _ZLIB, _RAW = 16 + zlib.MAX_WBITS, zlib.MAX_WBITS, -zlib.MAX_WBITS
# Responses are compressed for the wire, not for storage: the fastest level.
_LEVEL = 1


def inflate(body: bytes, coding: str | None, limit: int) -> bytes:
    """``body`` decoded from ``coding`` (None or identity: as is); raises ``PayloadTooLarge``
    as soon as the inflated size passes ``limit``, never holding more than that."""
    if coding is None:
        return body
    coding = coding.strip().lower()
    if coding in ("", "identity"):
        return body
    if coding not in CODINGS:
        raise UnsupportedEncoding(
            f"Content-Encoding {coding!r} is not supported: send gzip, deflate or identity",
            headers={"accept-encoding": ", ".join(CODINGS)})
    # HTTP's deflate is the zlib format (RFC 9110 §8.4.1.2); some clients send raw deflate.
    attempts = (_GZIP,) if coding == "gzip" else (_ZLIB, _RAW)
    for index, wbits in enumerate(attempts):
        inflater = zlib.decompressobj(wbits)
        try:
            data = inflater.decompress(body, limit + 1)
        except zlib.error as exc:
            if index + 1 < len(attempts):
                continue
            raise InvalidInput(f"request body is not valid {coding}: {exc}") from None
        if len(data) > limit or inflater.unconsumed_tail:
            raise PayloadTooLarge(f"request body inflates to over the {limit}-byte limit "
                                  "(AIINFRA_MAX_REQUEST_BYTES)")
        if not inflater.eof:
            raise InvalidInput(f"request body is not valid {coding}: it ends before the "
                               "compressed stream does")
        return data
    raise AssertionError("unreachable")  # pragma: no cover


def choose(accept: str | None) -> str | None:
    """The coding to answer in for an ``Accept-Encoding`` value: the client's preferred one
    of gzip and deflate (by q-value, then order); None for a plain body."""
    if not accept:
        return None
    best, best_q = None, 0.0
    wildcard = None
    for item in accept.split(","):
        name, _, params = item.strip().partition(";")
        name = name.strip().lower()
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if name == "*":
            wildcard = q
            continue
        if name in CODINGS and q > best_q:
            best, best_q = name, q
    if best is None and wildcard:
        return "gzip"
    return best


def compress(content: bytes, coding: str) -> bytes:
    if coding == "gzip":
        compressor = zlib.compressobj(_LEVEL, zlib.DEFLATED, _GZIP)
    else:
        compressor = zlib.compressobj(_LEVEL, zlib.DEFLATED, _ZLIB)
    return compressor.compress(content) + compressor.flush()
