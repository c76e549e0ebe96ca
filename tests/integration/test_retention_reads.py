"""Readers under RETENTION: listings, lookups by id and aggregates start at the cutoff to the millisecond, before
any sweep; aggregates over expired time come from rollups (whole intervals, count/sum/min/max/avg only)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from pymongo import AsyncMongoClient

from telemetry_server.models.aggregation import AggregateFn, AggregateQuery
from telemetry_server.models.metric import MetricInput
from telemetry_server.models.metric_query import MetricQuery
from telemetry_server.models.retention import RollupSize, retention_cutoff
from telemetry_server.storage.bucket_aggregation import BucketAggregationStore
from telemetry_server.storage.mongo_buckets import MongoBucketStore
from tests.integration.test_bucket_upkeep import NOW, Clock

RETENTION = timedelta(hours=1)
CUTOFF = retention_cutoff(NOW, RETENTION)
MS = timedelta(milliseconds=1)
Scenario = Callable[[MongoBucketStore, BucketAggregationStore, Any], Awaitable[None]]


def run(mongo_uri: str, scenario: Scenario, rollups: tuple[RollupSize, ...] = ()) -> None:
    async def go() -> None:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri, tz_aware=True)
        name = f"retention_reads_{uuid.uuid4().hex[:12]}"
        clock = Clock()
        store = MongoBucketStore(client, name, 1000, RETENTION, clock=clock)
        aggregations = BucketAggregationStore(
            client[name], store.registry, retention=RETENTION, rollups=rollups, clock=clock
        )
        try:
            await store.ensure_indexes()
            await scenario(store, aggregations, client[name])
        finally:
            await client.drop_database(name)
            await store.aclose()

    asyncio.run(go())


def test_points_before_the_cutoff_are_never_returned(mongo_uri: str) -> None:
    assert CUTOFF is not None

    async def scenario(store: MongoBucketStore, aggregations: BucketAggregationStore, _: Any) -> None:
        expired, kept = await store.insert(
            [MetricInput("cpu", (), 1.0, CUTOFF - MS), MetricInput("cpu", (), 2.0, CUTOFF)]
        )
        assert [m.id for m in await store.find(MetricQuery(name="cpu"))] == [kept.id]
        assert [m.id for m in await store.find(MetricQuery(name="cpu", start=CUTOFF - timedelta(days=1)))] == [kept.id]
        assert await store.find(MetricQuery(name="cpu", end=CUTOFF)) == []
        assert await store.get(expired.id) is None
        assert await store.delete(expired.id) is None
        assert await store.get(kept.id) == kept
        rows = await aggregations.aggregate(AggregateQuery(fn=AggregateFn.COUNT, name="cpu"), 100)
        assert [row.value for row in rows] == [1.0]

    run(mongo_uri, scenario)


def test_aggregates_over_expired_time_add_whole_rollup_intervals(mongo_uri: str) -> None:
    assert CUTOFF is not None
    minute = timedelta(minutes=1)
    # Whole minutes well before the cutoff, as a sweep leaves them.
    old = CUTOFF.replace(second=0, microsecond=0) - 10 * minute

    async def scenario(store: MongoBucketStore, aggregations: BucketAggregationStore, db: Any) -> None:
        await store.insert([MetricInput("cpu", (), 5.0, CUTOFF + minute)])
        series = store.registry.index.find("cpu", ())
        await db["rollups_1m"].insert_many(
            [
                {"series": series, "start": old, "count": 3, "sum": 6.0, "min": 1.0, "max": 3.0},
                {"series": series, "start": old + minute, "count": 1, "sum": 9.0, "min": 9.0, "max": 9.0},
            ]
        )
        window = {"name": "cpu", "start": old, "end": NOW}
        count = await aggregations.aggregate(AggregateQuery(fn=AggregateFn.COUNT, **window), 100)
        total = await aggregations.aggregate(AggregateQuery(fn=AggregateFn.SUM, **window), 100)
        high = await aggregations.aggregate(AggregateQuery(fn=AggregateFn.MAX, **window), 100)
        assert (count[0].value, total[0].value, high[0].value) == (5.0, 20.0, 9.0)
        # A window starting inside a rollup interval cannot use it: only the whole one after it.
        cut = await aggregations.aggregate(
            AggregateQuery(fn=AggregateFn.COUNT, name="cpu", start=old + MS, end=NOW), 100
        )
        assert cut[0].value == 2.0
        # Percentiles need every value: over expired time there is none.
        p50 = await aggregations.aggregate(AggregateQuery(fn=AggregateFn.P50, **window), 100)
        assert p50[0].value == 5.0

    run(mongo_uri, scenario, rollups=(RollupSize.MINUTE, RollupSize.HOUR))
