"""LocalCache: the per-worker L1 in front of Redis, dropped by name when any worker writes."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

# Entries that do not depend on a single name (queries without `name`) depend on every write.
ANY_NAME = "*"


class LocalCache:
    """A bounded LRU of response bodies with a short TTL, grouped by the metric name they depend on."""

    def __init__(self, max_entries: int, ttl_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._max_entries = max_entries
        self._ttl = ttl_seconds
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, str, bytes]] = OrderedDict()
        self._by_name: dict[str, set[str]] = {}
        # A value read before a write must not be put after it: each invalidation stamps the names it
        # drops (ANY_NAME with every one) and a clear stamps all, from one ever-growing counter.
        self._tick = 0
        self._versions: dict[str, int] = {}
        self._cleared_at = 0
        self.enabled = ttl_seconds > 0

    def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, _, value = entry
        if expires < self._clock():
            self._remove(key)
            return None
        self._entries.move_to_end(key)
        return value

    def version(self, depends_on: str | None) -> int:
        return max(self._versions.get(depends_on or ANY_NAME, 0), self._cleared_at)

    def put(self, key: str, depends_on: str | None, value: bytes, version: int) -> None:
        """Keep `value` unless an invalidation of its name came after `version` was read."""
        name = depends_on or ANY_NAME
        if not self.enabled or self.version(name) != version:
            return
        if key in self._entries:
            self._remove(key)
        self._entries[key] = (self._clock() + self._ttl, name, value)
        self._by_name.setdefault(name, set()).add(key)
        while len(self._entries) > self._max_entries:
            self._remove(next(iter(self._entries)))

    def invalidate(self, names: Iterable[str]) -> None:
        """Drop entries for these names and every entry that depends on any name."""
        for name in {*names, ANY_NAME}:
            self._tick += 1
            self._versions[name] = self._tick
            for key in self._by_name.pop(name, ()):
                self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()
        self._by_name.clear()
        self._versions.clear()
        self._tick += 1
        self._cleared_at = self._tick

    def __len__(self) -> int:
        return len(self._entries)

    def _remove(self, key: str) -> None:
        _, name, _ = self._entries.pop(key)
        keys = self._by_name.get(name)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_name[name]
