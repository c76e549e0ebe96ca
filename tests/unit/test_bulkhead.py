"""Bulkhead: heavy reads take one of a few slots and share one time limit, the wait for a slot included."""

from __future__ import annotations

import asyncio

import pytest

from telemetry_server.errors import QueryTimedOut
from telemetry_server.services.bulkhead import Bulkhead, TimeBudget
from telemetry_server.services.local_cache import LocalCache
from telemetry_server.services.metric_service import MetricService, prepare_listing
from telemetry_server.services.stats_records import Stats
from telemetry_server.services.two_level_cache import TwoLevelCache
from tests.fakes import InMemoryMetricStore, InMemoryQueryCache


def test_at_most_capacity_run_at_once() -> None:
    bulkhead = Bulkhead(2, 5.0, "the read", "retry")
    running = most = 0

    async def work(budget: TimeBudget) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.01)
        running -= 1

    async def run() -> None:
        await asyncio.gather(*(bulkhead.run(work) for _ in range(6)))

    asyncio.run(run())
    assert most == 2


def test_the_work_is_given_the_time_left_for_the_database() -> None:
    bulkhead = Bulkhead(1, 2.0, "the read", "retry")
    given: list[float] = []

    async def work(budget: TimeBudget) -> None:
        given.append(budget.left())

    asyncio.run(bulkhead.run(work))
    assert 0 < given[0] <= 2.0


def test_waiting_for_a_slot_counts_against_the_limit() -> None:
    bulkhead = Bulkhead(1, 0.05, "the read", "narrow it or retry")

    async def hold(budget: TimeBudget) -> None:
        await asyncio.sleep(1)

    async def run() -> list[object]:
        return await asyncio.gather(bulkhead.run(hold), bulkhead.run(hold), return_exceptions=True)

    outcomes = asyncio.run(run())
    assert all(isinstance(outcome, QueryTimedOut) for outcome in outcomes)
    refused = outcomes[1]
    assert isinstance(refused, QueryTimedOut)
    assert refused.status == 503
    assert refused.detail == "the read did not finish within 0.05 s: narrow it or retry"
    assert (b"retry-after", b"1") in refused.headers()


def test_a_database_that_stops_at_the_limit_gets_the_same_answer() -> None:
    bulkhead = Bulkhead(1, 5.0, "the read", "retry")

    async def stopped(budget: TimeBudget) -> None:
        raise QueryTimedOut("MongoDB stopped the find at its time limit")

    with pytest.raises(QueryTimedOut, match="the read did not finish within 5 s"):
        asyncio.run(bulkhead.run(stopped))


class TimedStore(InMemoryMetricStore):
    def __init__(self) -> None:
        super().__init__()
        self.limits: list[float | None] = []

    async def find(self, query, time_limit=None):  # type: ignore[no-untyped-def]
        self.limits.append(time_limit)
        return await super().find(query, time_limit)


@pytest.mark.parametrize(
    ("query", "bounded"),
    [
        ("name=cpu", False),
        ("name=cpu&cursor=" + "MTc2NDI4NzkyMDEyMzo2YjBhMWFjMWFjZTMyMDM4NjUzNGYxNWU", False),
        ("name=cpu&value_gt=0.5", True),
        ("name=cpu&tag=host:a", True),
        ("name=cpu&from=2026-01-01T00:00:00Z", True),
        ("to=2026-01-01T00:00:00Z", True),
    ],
)
def test_listings_that_may_scan_run_in_the_bulkhead_with_a_time_limit(query: str, bounded: bool) -> None:
    store = TimedStore()
    cache = TwoLevelCache(LocalCache(10, 5), InMemoryQueryCache(), Stats())
    service = MetricService(store, cache, filtered_listings=Bulkhead(1, 3.0, "the listing", "retry"))

    asyncio.run(service.list_json(prepare_listing(query, 10, 100)))
    (limit,) = store.limits
    assert (limit is not None and 0 < limit <= 3.0) if bounded else limit is None
