"""LocalCache: the per-worker L1 in front of Redis; a write updates the listing pages it changes and drops the
other entries that depend on what it wrote."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence

from telemetry_server.services.listing_page import ListedPoint, ListingPage, exact

# One point's change as every L1 applies it: (before, after); None before is an insert, None after a delete.
Change = tuple[ListedPoint | None, ListedPoint | None]


class LocalCache:
    """An LRU of response bodies, grouped by the dependency key of each, bounded both in bytes (bodies, keys and
    the points a page holds: a 1,000-item page is ~150 KB, so a count alone bounds nothing) and in entries (the
    bookkeeping of each costs a few hundred bytes whatever its body).

    A plain body lives `ttl_seconds` and is dropped by any write to its dependency key. A listing page (see
    services/listing_page.py) is updated by such writes instead, so it stays exact for longer: it lives
    `page_ttl_seconds`.
    """

    def __init__(
        self,
        max_entries: int,
        ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        max_bytes: int = 24 << 20,
        page_ttl_seconds: float | None = None,
    ) -> None:
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._ttl = ttl_seconds
        self._page_ttl = max(ttl_seconds, page_ttl_seconds or 0) if ttl_seconds > 0 else 0
        self._clock = clock
        # key -> (expires, dependency, body, page or None, bytes counted)
        self._entries: OrderedDict[str, tuple[float, str, bytes, ListingPage | None, int]] = OrderedDict()
        self._bytes = 0
        self._by_dependency: dict[str, set[str]] = {}
        # A value read before a write must not be put after it: each write stamps the keys it touches and a
        # clear stamps all, from one ever-growing counter.
        self._tick = 0
        self._versions: dict[str, int] = {}
        self._cleared_at = 0
        self.enabled = ttl_seconds > 0

    def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] < self._clock():
            self._remove(key)
            return None
        self._entries.move_to_end(key)
        return entry[2]

    def version(self, dependency: str) -> int:
        return max(self._versions.get(dependency, 0), self._cleared_at)

    def put(self, key: str, dependency: str, value: bytes, version: int) -> None:
        """Keep `value` unless a write to its dependency came after `version` was read."""
        value = exact(value)  # it may come from orjson, whose bytes keep their spare capacity
        self._put(key, dependency, value, None, len(key) + len(value), self._ttl, version)

    def put_page(self, key: str, dependency: str, page: ListingPage, version: int) -> None:
        """Keep `page`, to be updated by writes, unless a write to its dependency came after `version` was read."""
        self._put(key, dependency, page.body, page, len(key) + page.size, self._page_ttl, version)

    def invalidate(self, dependencies: Iterable[str]) -> None:
        for dependency in dependencies:
            for key in self._touch(dependency):
                self._forget(key)

    def apply(self, dependencies: Iterable[str], changes: Sequence[Change]) -> None:
        """A write of `changes` that touched `dependencies`: its pages are updated, or dropped where they cannot
        be kept exact, and every other entry depending on them is dropped."""
        for dependency in dependencies:
            for key in self._touch(dependency):
                entry = self._entries.get(key)
                if entry is None:
                    continue
                page = entry[3]
                if page is None or not all(page.apply(before, after) for before, after in changes):
                    self._forget(key)
                    continue
                page.refresh()
                size = len(key) + page.size
                self._entries[key] = (entry[0], entry[1], page.body, page, size)
                self._bytes += size - entry[4]
        self._evict()

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

    def _put(
        self, key: str, dependency: str, body: bytes, page: ListingPage | None, size: int, ttl: float, version: int
    ) -> None:
        if not self.enabled or self.version(dependency) != version:
            return
        if key in self._entries:
            self._remove(key)
        if size > self._max_bytes:
            return
        self._entries[key] = (self._clock() + ttl, dependency, body, page, size)
        self._bytes += size
        self._by_dependency.setdefault(dependency, set()).add(key)
        self._evict()

    def _touch(self, dependency: str) -> set[str]:
        """Stamp `dependency` written (a read that began before must not be put) and hand over its keys."""
        self._tick += 1
        self._versions[dependency] = self._tick
        keys = self._by_dependency.get(dependency)
        return set(keys) if keys else set()

    def _evict(self) -> None:
        while len(self._entries) > self._max_entries or self._bytes > self._max_bytes:
            self._remove(next(iter(self._entries)))

    def _forget(self, key: str) -> None:
        if key in self._entries:
            self._remove(key)

    def _remove(self, key: str) -> None:
        _, dependency, _, _, size = self._entries.pop(key)
        self._bytes -= size
        keys = self._by_dependency.get(dependency)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_dependency[dependency]
