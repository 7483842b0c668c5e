"""Container image references: tag and digest."""

from __future__ import annotations

import re

DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def tag(image: str) -> str | None:
    """The tag of ``registry/name:tag@digest``, or None (a registry port is not a tag)."""
    last = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def has_digest(image: str) -> bool:
    return bool(DIGEST.search(image))
