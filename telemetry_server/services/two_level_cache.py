"""TwoLevelCache: a per-worker L1 in front of the shared Redis L2; an L1 hit costs no Redis round trip."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from telemetry_server.ports import Lookup, QueryCache
from telemetry_server.services.local_cache import LocalCache
from telemetry_server.services.stats_records import CacheLevel, Stats


class TwoLevelCache:
    """Writes drop this worker's L1 entries at once and every other worker's through Redis pub/sub.

    The L1 is trusted only while the subscription is live: when it drops, the L1 is emptied and bypassed
    until the worker is subscribed again, so a missed invalidation never leaves a stale entry behind.
    """

    def __init__(self, local: LocalCache, shared: QueryCache, stats: Stats) -> None:
        self._local = local
        self._shared = shared
        self._l1_counts = stats.cache[CacheLevel.L1]
        self._l2_counts = stats.cache[CacheLevel.L2]
        self._subscribed = False

    @property
    def local_live(self) -> bool:
        return self._subscribed and self._local.enabled

    async def lookup(self, dependency: str, query_key: str) -> Lookup:
        version = None
        if self.local_live:
            value = self._local.get(query_key)
            self._l1_counts.count(value is not None)
            if value is not None:
                return Lookup(value, b"", dependency)
            version = self._local.version(dependency)
        found = await self._shared.lookup(dependency, query_key)
        if found.generation:  # Redis answered
            self._l2_counts.count(found.value is not None)
        if found.value is not None and version is not None:
            self._local.put(query_key, dependency, found.value, version)
        return replace(found, dependency=dependency, local_version=version)

    async def store(self, query_key: str, lookup: Lookup, value: bytes) -> None:
        if lookup.local_version is not None and self.local_live:
            self._local.put(query_key, lookup.dependency, value, lookup.local_version)
        await self._shared.store(query_key, lookup, value)

    async def invalidate(self, dependencies: Sequence[str]) -> None:
        self._local.invalidate(dependencies)
        await self._shared.invalidate(dependencies)

    def on_remote_invalidation(self, dependencies: list[str]) -> None:
        self._local.invalidate(dependencies)

    def on_subscription(self, live: bool) -> None:
        if live != self._subscribed:
            self._local.clear()
        self._subscribed = live

    async def ping(self) -> bool:
        return await self._shared.ping()

    async def aclose(self) -> None:
        await self._shared.aclose()
