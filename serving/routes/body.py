"""Reading a request body within ``AIINFRA_MAX_REQUEST_BYTES``: one reader for every route.

The limit is enforced while reading, whatever ``Content-Length`` says: a declared length over
the limit is refused before a byte is read, and a body that outgrows the limit (a chunked
one, or one longer than it declared) is refused as soon as it does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from serving.errors import ClientDisconnected, PayloadTooLarge

Receive = Callable[[], Awaitable[dict]]


def declared_length(value: bytes | str | None) -> int | None:
    """``Content-Length`` as a number; None when absent or not a plain decimal."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return int(value) if value.isascii() and value.isdigit() else None


async def read_body(receive: Receive, limit: int, declared: int | None = None) -> bytes:
    """The whole body from an ASGI ``receive``; raises ``PayloadTooLarge`` over ``limit``
    and ``ClientDisconnected`` when the client leaves first."""
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"request body of {declared} bytes is over the {limit}-byte limit "
                              "(AIINFRA_MAX_REQUEST_BYTES)")
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected("client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body is over the {limit}-byte limit "
                                  "(AIINFRA_MAX_REQUEST_BYTES)")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
