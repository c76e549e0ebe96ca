"""LocalCache: the per-worker L1 in front of Redis, dropped by dependency key when any worker writes."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable


class LocalCache:
    """An LRU of response bodies with a short TTL, grouped by the dependency key of each, bounded both in bytes
    (bodies and their keys: a 1,000-item page is ~150 KB, so a count alone bounds nothing) and in entries (the
    bookkeeping of each costs a few hundred bytes whatever its body)."""

    def __init__(
        self,
        max_entries: int,
        ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        max_bytes: int = 64 << 20,
    ) -> None:
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._ttl = ttl_seconds
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, str, bytes]] = OrderedDict()
        self._bytes = 0
        self._by_dependency: dict[str, set[str]] = {}
        # A value read before a write must not be put after it: each invalidation stamps the keys it drops
        # and a clear stamps all, from one ever-growing counter.
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

    def version(self, dependency: str) -> int:
        return max(self._versions.get(dependency, 0), self._cleared_at)

    def put(self, key: str, dependency: str, value: bytes, version: int) -> None:
        """Keep `value` unless an invalidation of its dependency came after `version` was read."""
        if not self.enabled or self.version(dependency) != version:
            return
        if key in self._entries:
            self._remove(key)
        size = len(key) + len(value)
        if size > self._max_bytes:
            return
        self._entries[key] = (self._clock() + self._ttl, dependency, value)
        self._bytes += size
        self._by_dependency.setdefault(dependency, set()).add(key)
        while len(self._entries) > self._max_entries or self._bytes > self._max_bytes:
            self._remove(next(iter(self._entries)))

    def invalidate(self, dependencies: Iterable[str]) -> None:
        for dependency in dependencies:
            self._tick += 1
            self._versions[dependency] = self._tick
            for key in self._by_dependency.pop(dependency, ()):
                entry = self._entries.pop(key, None)
                if entry is not None:
                    self._bytes -= len(key) + len(entry[2])

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0
        self._by_dependency.clear()
        self._versions.clear()
        self._tick += 1
        self._cleared_at = self._tick

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def _remove(self, key: str) -> None:
        _, dependency, value = self._entries.pop(key)
        self._bytes -= len(key) + len(value)
        keys = self._by_dependency.get(dependency)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_dependency[dependency]
