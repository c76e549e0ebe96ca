"""LocalCache (L1), TwoLevelCache and SingleFlight: hits without Redis, invalidation, pages updated by writes,
no stale refills."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from telemetry_server.models.metric import Metric
from telemetry_server.models.metric_query import MetricQuery
from telemetry_server.ports import Lookup
from telemetry_server.services import two_level_cache
from telemetry_server.services.cache_dependency import (
    PointChange,
    change_dependencies,
    read_dependency,
    write_dependencies,
)
from telemetry_server.services.listing_page import ListedPoint, ListingPage, render_metrics
from telemetry_server.services.local_cache import LocalCache
from telemetry_server.services.single_flight import SingleFlight
from telemetry_server.services.stats_records import CacheLevel, Stats
from telemetry_server.services.two_level_cache import ChangeOrder, TwoLevelCache
from tests.fakes import InMemoryQueryCache, ManualClock

TAGS = ["region:eu", "region:us", "host:a", "host:b"]


def test_local_cache_expires_evicts_and_invalidates_by_name() -> None:
    clock = ManualClock()
    cache = LocalCache(max_entries=2, ttl_seconds=5, clock=clock)
    cache.put("a", "n:cpu", b"A", cache.version("n:cpu"))
    cache.put("b", "*", b"B", cache.version("*"))
    assert cache.get("a") == b"A"
    cache.put("c", "n:mem", b"C", cache.version("n:mem"))  # evicts b, the least recently used
    assert cache.get("b") is None
    cache.invalidate(["n:mem"])
    assert cache.get("c") is None
    assert cache.get("a") == b"A"
    clock.now += 6
    assert cache.get("a") is None


def test_local_cache_is_bounded_by_bytes() -> None:
    page = b"x" * 150_000  # a page of 1,000 metrics
    cache = LocalCache(max_entries=10_000, ttl_seconds=5, max_bytes=500_000)
    for i in range(10):
        cache.put(f"page{i}", "n:cpu", page, cache.version("n:cpu"))
        assert cache.size_bytes <= 500_000
    assert len(cache) == 3
    assert cache.get("page9") == page  # the most recent stay
    assert cache.get("page6") is None
    cache.put("huge", "n:cpu", b"x" * 600_000, cache.version("n:cpu"))  # larger than the whole budget
    assert cache.get("huge") is None
    assert cache.get("page9") == page, "a body too large to keep evicted the others"


@given(
    operations=st.lists(
        st.tuples(st.sampled_from(["put", "invalidate", "clear", "get"]), st.integers(0, 5), st.integers(0, 40)),
        max_size=60,
    )
)
def test_local_cache_counts_its_bytes_exactly(operations: list[tuple[str, int, int]]) -> None:
    clock = ManualClock()
    cache = LocalCache(max_entries=4, ttl_seconds=5, clock=clock, max_bytes=60)
    for op, which, size in operations:
        key, dependency = f"k{which}", f"n:{which % 3}"
        if op == "put":
            cache.put(key, dependency, b"v" * size, cache.version(dependency))
        elif op == "invalidate":
            cache.invalidate([dependency])
        elif op == "clear":
            cache.clear()
        else:
            clock.now += size / 10  # some entries expire on the way
            cache.get(key)
        kept = {k: cache.get(k) for k in (f"k{i}" for i in range(6))}
        assert cache.size_bytes == sum(len(k) + len(v) for k, v in kept.items() if v is not None)
        assert cache.size_bytes <= 60
        assert len(cache) <= 4


def test_local_cache_drops_only_the_dependencies_written() -> None:
    cache = LocalCache(max_entries=10, ttl_seconds=5)
    eu, us = read_dependency("cpu", ["region:eu"]), read_dependency("cpu", ["region:us"])
    cache.put("eu", eu, b"EU", cache.version(eu))
    cache.put("us", us, b"US", cache.version(us))
    cache.put("all", read_dependency(None, []), b"ALL", cache.version(read_dependency(None, [])))
    cache.invalidate(write_dependencies([("cpu", ["region:us", "host:a"])]))
    assert cache.get("eu") == b"EU"
    assert cache.get("us") is None
    assert cache.get("all") is None


@given(
    query_name=st.sampled_from([None, "cpu", "mem"]),
    query_tags=st.lists(st.sampled_from(TAGS), max_size=3, unique=True),
    writes=st.lists(
        st.tuples(st.sampled_from(["cpu", "mem"]), st.lists(st.sampled_from(TAGS), max_size=4, unique=True)),
        min_size=1,
        max_size=3,
    ),
)
def test_every_write_that_can_change_an_answer_touches_its_dependency(
    query_name: str | None, query_tags: list[str], writes: list[tuple[str, list[str]]]
) -> None:
    can_change = any(
        (query_name is None or name == query_name) and set(query_tags) <= set(tags) for name, tags in writes
    )
    if can_change:
        assert read_dependency(query_name, query_tags) in write_dependencies(writes)


def test_a_value_read_before_a_write_is_not_kept_after_it() -> None:
    cache = LocalCache(max_entries=10, ttl_seconds=5)
    version = cache.version("n:cpu")
    cache.invalidate(["n:cpu"])  # a write lands while the read is in flight
    cache.put("q", "n:cpu", b"stale", version)
    assert cache.get("q") is None
    cleared_version = cache.version("n:other")
    cache.clear()
    cache.put("r", "n:other", b"stale", cleared_version)
    assert cache.get("r") is None


def two_levels() -> tuple[TwoLevelCache, InMemoryQueryCache, Stats]:
    shared, stats = InMemoryQueryCache(), Stats()
    cache = TwoLevelCache(LocalCache(100, 5), shared, stats)
    cache.on_subscription(True)
    return cache, shared, stats


def test_second_read_is_an_l1_hit_without_asking_redis() -> None:
    cache, shared, stats = two_levels()

    async def scenario() -> Lookup:
        miss = await cache.lookup("n:cpu", "q")
        await cache.store("q", miss, b"body")
        shared.up = False  # an L1 hit must not need Redis
        return await cache.lookup("n:cpu", "q")

    assert asyncio.run(scenario()).value == b"body"
    assert stats.cache[CacheLevel.L1].hits == 1


def test_another_workers_write_drops_the_l1_entry() -> None:
    cache, shared, _ = two_levels()

    async def scenario() -> Lookup:
        miss = await cache.lookup("n:cpu", "q")
        await cache.store("q", miss, b"old")
        shared.entries.clear()
        cache.on_message(1, ["n:cpu"], b"")
        return await cache.lookup("n:cpu", "q")

    assert asyncio.run(scenario()).value is None


def test_without_a_live_subscription_the_l1_is_bypassed_and_emptied() -> None:
    cache, shared, _ = two_levels()

    async def scenario() -> Lookup:
        miss = await cache.lookup("n:cpu", "q")
        await cache.store("q", miss, b"old")
        cache.on_subscription(False)
        shared.entries.clear()
        return await cache.lookup("n:cpu", "q")

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


CPU = MetricQuery(name="cpu", limit=2)
CPU_DEPENDENCY = read_dependency("cpu", ())


def cached_page(metrics: list[Metric], query: MetricQuery = CPU) -> ListingPage:
    return ListingPage.read(query, sorted(metrics, key=lambda m: (m.timestamp, m.id), reverse=True))


def live_cache(shared: InMemoryQueryCache | None = None, echo_timeout: float = 1.0) -> TwoLevelCache:
    """A TwoLevelCache subscribed to `shared`'s channel, as the app's lifespan starts it."""
    shared = shared or InMemoryQueryCache()
    cache = TwoLevelCache(LocalCache(100, 5, page_ttl_seconds=60), shared, Stats(), echo_timeout)
    cache.on_subscription(True)
    shared._listener = cache.on_message  # what `listen` hands over
    return cache


def cpu(id_: int, second: int, value: float = 1.0) -> Metric:
    return Metric(f"{id_:024x}", "cpu", ("region:eu",), value, datetime(2026, 11, 27, 10, 0, second, tzinfo=UTC))


def encoded_note(origin: str, number: int, since: int, changes: list[PointChange]) -> bytes:
    listed = [tuple(None if m is None else ListedPoint.of(m) for m in (c.before, c.after)) for c in changes]
    return two_level_cache.write_note(origin, number, since, listed)  # type: ignore[arg-type]


async def fill(cache: TwoLevelCache, metrics: list[Metric]) -> None:
    miss = await cache.lookup(CPU_DEPENDENCY, "q")
    await cache.store_page("q", miss, cached_page(metrics))


async def l1_answer(cache: TwoLevelCache, shared: InMemoryQueryCache) -> bytes | None:
    """What the L1 alone answers (Redis, here a dict that writes sent straight to the L1 did not touch, is off)."""
    shared.up = False
    return (await cache.lookup(CPU_DEPENDENCY, "q")).value


def test_a_write_updates_the_page_of_its_own_worker_before_it_returns() -> None:
    cache = live_cache()
    old = [cpu(1, 1), cpu(2, 2)]

    async def scenario() -> Lookup:
        await cache.record([PointChange(None, cpu(0, 0))], cache.write_mark())  # a first message: numbering known
        await fill(cache, old)
        await cache.record([PointChange(None, cpu(3, 3))], cache.write_mark())
        return await cache.lookup(CPU_DEPENDENCY, "q")

    found = asyncio.run(scenario())
    assert found.value == render_metrics([cpu(3, 3), cpu(2, 2)], 2)
    assert found.local_version is None  # an L1 hit


def test_another_workers_write_updates_the_page() -> None:
    cache = live_cache()

    async def scenario() -> Lookup:
        cache.on_message(10, ["*"], b"")
        await fill(cache, [cpu(1, 1), cpu(2, 2)])
        note = encoded_note("other", 1, 10, [PointChange(cpu(2, 2), cpu(2, 2, value=9.0))])
        cache.on_message(11, change_dependencies([PointChange(None, cpu(2, 2))]), note)
        return await cache.lookup(CPU_DEPENDENCY, "q")

    assert asyncio.run(scenario()).value == render_metrics([cpu(2, 2, value=9.0), cpu(1, 1)], 2)


def test_a_fill_that_read_before_a_change_is_not_kept() -> None:
    shared = InMemoryQueryCache()
    cache = live_cache(shared)

    async def scenario() -> bytes | None:
        cache.on_message(10, ["*"], b"")
        miss = await cache.lookup(CPU_DEPENDENCY, "q")
        note = encoded_note("other", 1, 10, [PointChange(None, cpu(3, 3))])
        cache.on_message(11, change_dependencies([PointChange(None, cpu(3, 3))]), note)  # lands during the read
        await cache.store_page("q", miss, cached_page([cpu(1, 1), cpu(2, 2)]))
        return await l1_answer(cache, shared)

    assert asyncio.run(scenario()) is None


def test_overlapping_writes_of_one_point_drop_instead_of_updating() -> None:
    shared = InMemoryQueryCache()
    cache = live_cache(shared)
    dependencies = change_dependencies([PointChange(None, cpu(2, 2))])

    async def scenario() -> bytes | None:
        cache.on_message(10, ["*"], b"")
        await fill(cache, [cpu(1, 1), cpu(2, 2)])
        # Two PUTs of point 2, each begun after message 10: the one announced second may have been stored first.
        first = encoded_note("a", 1, 10, [PointChange(cpu(2, 2, value=5.0), cpu(2, 2, value=6.0))])
        second = encoded_note("b", 1, 10, [PointChange(cpu(2, 2), cpu(2, 2, value=5.0))])
        cache.on_message(11, dependencies, first)  # made against another version: the page is dropped
        await fill(cache, [cpu(1, 1), cpu(2, 2, value=6.0)])
        cache.on_message(12, dependencies, second)  # overlapped message 11: dropped, not applied
        return await l1_answer(cache, shared)

    assert asyncio.run(scenario()) is None


def test_change_order_applies_only_writes_that_saw_every_earlier_message_of_their_points() -> None:
    order = ChangeOrder(remembered=2)
    assert not order.receive(10, 3, ["a"])  # began before this worker's first message: unknown
    assert order.receive(11, 10, ["a"])
    assert not order.receive(12, 10, ["a"])  # message 11 named `a` after this write began
    assert order.receive(13, 10, ["b"])
    assert order.receive(14, 13, ["c"])  # forgets `a` (at 12): writes begun before 12 are refused from now on
    assert not order.receive(15, 11, ["d"])
    assert not order.receive(16, 14, ["d"])  # message 15 named `d` after this write began, even if not applied
    assert order.receive(17, 15, ["e"])
    assert not order.receive(18, None, [])  # a write that did not say what it saw
    assert not order.receive(1, 17, ["f"])  # the counter restarted (at 1): a write that began before it is refused
    assert order.receive(2, 1, ["f"])


def test_a_write_whose_message_does_not_come_back_drops_its_entries() -> None:
    shared = InMemoryQueryCache()
    cache = live_cache(shared, echo_timeout=0.01)

    async def scenario() -> bytes | None:
        await cache.record([PointChange(None, cpu(0, 0))], cache.write_mark())
        await fill(cache, [cpu(1, 1), cpu(2, 2)])
        shared._listener = None  # the channel is silent
        await cache.record([PointChange(None, cpu(3, 3))], cache.write_mark())
        return await l1_answer(cache, shared)

    assert asyncio.run(scenario()) is None


def test_a_note_not_understood_drops_what_its_keys_touch() -> None:
    shared = InMemoryQueryCache()
    cache = live_cache(shared)

    async def scenario() -> bytes | None:
        cache.on_message(10, ["*"], b"")
        await fill(cache, [cpu(1, 1), cpu(2, 2)])
        cache.on_message(11, [CPU_DEPENDENCY], b'other 1 10\n[[null, {"id": 1}]]')
        return await l1_answer(cache, shared)

    assert asyncio.run(scenario()) is None


def test_a_message_that_comes_back_late_leaves_a_page_filled_after_its_write_as_it_is() -> None:
    shared = InMemoryQueryCache()
    cache = live_cache(shared, echo_timeout=0.01)
    late: list[tuple[int, list[str], bytes]] = []
    written = cpu(3, 3)

    async def scenario() -> bytes | None:
        await cache.record([PointChange(None, cpu(0, 0))], cache.write_mark())
        shared._listener = lambda *message: late.append(message)  # held up on the way
        await cache.record([PointChange(None, written)], cache.write_mark())
        await fill(cache, [cpu(1, 1), cpu(2, 2), written])  # read after the write
        cache.on_message(*late[0])
        return await l1_answer(cache, shared)

    assert asyncio.run(scenario()) == render_metrics([written, cpu(2, 2)], 2)
