"""A JSON response rendered with orjson (numpy-aware), for the protocol's small bodies."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Response


class JSONBody(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
