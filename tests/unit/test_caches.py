"""LocalCache (L1), TwoLevelCache and SingleFlight: hits without Redis, invalidation, no stale refills."""

from __future__ import annotations

import asyncio

from telemetry_server.ports import Lookup
from telemetry_server.services.local_cache import LocalCache
from telemetry_server.services.query_cache import TwoLevelCache
from telemetry_server.services.single_flight import SingleFlight
from telemetry_server.services.stats import Stats
from tests.fakes import InMemoryQueryCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_local_cache_expires_evicts_and_invalidates_by_name() -> None:
    clock = Clock()
    cache = LocalCache(max_entries=2, ttl_seconds=5, clock=clock)
    cache.put("a", "cpu", b"A", cache.version("cpu"))
    cache.put("b", None, b"B", cache.version(None))
    assert cache.get("a") == b"A"
    cache.put("c", "mem", b"C", cache.version("mem"))  # evicts b, the least recently used
    assert cache.get("b") is None
    cache.invalidate(["mem"])
    assert cache.get("c") is None
    assert cache.get("a") == b"A"
    clock.now = 6
    assert cache.get("a") is None


def test_local_cache_drops_queries_without_a_name_on_every_write() -> None:
    cache = LocalCache(max_entries=10, ttl_seconds=5)
    cache.put("all", None, b"ALL", cache.version(None))
    cache.invalidate(["anything"])
    assert cache.get("all") is None


def test_a_value_read_before_a_write_is_not_kept_after_it() -> None:
    cache = LocalCache(max_entries=10, ttl_seconds=5)
    version = cache.version("cpu")
    cache.invalidate(["cpu"])  # a write lands while the read is in flight
    cache.put("q", "cpu", b"stale", version)
    assert cache.get("q") is None
    cleared_version = cache.version("other")
    cache.clear()
    cache.put("r", "other", b"stale", cleared_version)
    assert cache.get("r") is None


def two_levels() -> tuple[TwoLevelCache, InMemoryQueryCache, Stats]:
    shared, stats = InMemoryQueryCache(), Stats()
    cache = TwoLevelCache(LocalCache(100, 5), shared, stats)
    cache.on_subscription(True)
    return cache, shared, stats


def test_second_read_is_an_l1_hit_without_asking_redis() -> None:
    cache, shared, stats = two_levels()

    async def scenario() -> Lookup:
        miss = await cache.lookup("cpu", "q")
        await cache.store("q", miss, b"body")
        shared.up = False  # an L1 hit must not need Redis
        return await cache.lookup("cpu", "q")

    assert asyncio.run(scenario()).value == b"body"
    assert stats.cache["l1_hits"] == 1


def test_another_workers_write_drops_the_l1_entry() -> None:
    cache, shared, _ = two_levels()

    async def scenario() -> Lookup:
        miss = await cache.lookup("cpu", "q")
        await cache.store("q", miss, b"old")
        shared.entries.clear()
        cache.on_remote_invalidation(["cpu"])
        return await cache.lookup("cpu", "q")

    assert asyncio.run(scenario()).value is None


def test_without_a_live_subscription_the_l1_is_bypassed_and_emptied() -> None:
    cache, shared, _ = two_levels()

    async def scenario() -> Lookup:
        miss = await cache.lookup("cpu", "q")
        await cache.store("q", miss, b"old")
        cache.on_subscription(False)
        shared.entries.clear()
        return await cache.lookup("cpu", "q")

    assert asyncio.run(scenario()).value is None
    assert not cache.local_live


def test_single_flight_makes_one_call_for_a_burst() -> None:
    calls = 0

    async def work() -> bytes:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return b"result"

    async def scenario() -> list[bytes]:
        flights: SingleFlight[bytes] = SingleFlight()
        return await asyncio.gather(*(flights.do("k", work) for _ in range(20)))

    assert asyncio.run(scenario()) == [b"result"] * 20
    assert calls == 1


def test_single_flight_shares_a_failure() -> None:
    async def work() -> bytes:
        await asyncio.sleep(0.01)
        raise ValueError("down")

    async def scenario() -> list[BaseException | bytes]:
        flights: SingleFlight[bytes] = SingleFlight()
        return await asyncio.gather(*(flights.do("k", work) for _ in range(3)), return_exceptions=True)

    assert all(isinstance(r, ValueError) for r in asyncio.run(scenario()))
