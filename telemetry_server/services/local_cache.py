"""LocalCache: the per-worker L1 in front of Redis, dropped by dependency key when any worker writes."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable


class LocalCache:
    """A bounded LRU of response bodies with a short TTL, grouped by the dependency key of each."""

    def __init__(self, max_entries: int, ttl_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._max_entries = max_entries
        self._ttl = ttl_seconds
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, str, bytes]] = OrderedDict()
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
        self._entries[key] = (self._clock() + self._ttl, dependency, value)
        self._by_dependency.setdefault(dependency, set()).add(key)
        while len(self._entries) > self._max_entries:
            self._remove(next(iter(self._entries)))

    def invalidate(self, dependencies: Iterable[str]) -> None:
        for dependency in dependencies:
            self._tick += 1
            self._versions[dependency] = self._tick
            for key in self._by_dependency.pop(dependency, ()):
                self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()
        self._by_dependency.clear()
        self._versions.clear()
        self._tick += 1
        self._cleared_at = self._tick

    def __len__(self) -> int:
        return len(self._entries)

    def _remove(self, key: str) -> None:
        _, dependency, _ = self._entries.pop(key)
        keys = self._by_dependency.get(dependency)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_dependency[dependency]
