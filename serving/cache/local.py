"""The in-process tier: least recently used out first, bounded in bytes, entries with a TTL."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import NamedTuple

import numpy as np

from serving.datatypes import payload_bytes

_ENTRY_OVERHEAD = 200  # bytes of bookkeeping per entry, so tiny entries are not free


class _Entry(NamedTuple):
    expires: float
    outputs: tuple[np.ndarray, ...]
    size: int


class LocalCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes) -> tuple[np.ndarray, ...] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires <= time.monotonic():
            self._remove(key)
            return None
        self._entries.move_to_end(key)
        return entry.outputs

    def put(self, key: bytes, outputs: tuple[np.ndarray, ...], ttl_s: float) -> None:
        """Keep ``outputs`` (read-only arrays) for ``ttl_s``; too large an entry is not kept."""
        size = sum(payload_bytes(a) for a in outputs) + len(key) + _ENTRY_OVERHEAD
        if size > self.max_bytes:
            return
        if key in self._entries:
            self._remove(key)
        while self.size + size > self.max_bytes:
            self._remove(next(iter(self._entries)))
        self._entries[key] = _Entry(time.monotonic() + ttl_s, outputs, size)
        self.size += size

    def _remove(self, key: bytes) -> None:
        self.size -= self._entries.pop(key).size

    def clear(self) -> None:
        self._entries.clear()
        self.size = 0
