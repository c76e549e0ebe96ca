"""Compaction and the sweep under the bucket store (storage/mongo_buckets.py): every id the store answered keeps
answering GET, PUT and DELETE through compaction, with PUTs (in place and moving) and DELETEs racing it; the sweep
leaves the store exactly the unexpired points. Skipped where the bucket store is not built yet."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from telemetry_server.models.metric import Metric, MetricInput
from telemetry_server.models.metric_query import MetricQuery
from telemetry_server.models.retention import retention_cutoff
from telemetry_server.storage.bucket_upkeep import BucketUpkeep
from tests.integration.test_bucket_upkeep import NOW, Clock, Database

mongo_buckets = pytest.importorskip("telemetry_server.storage.mongo_buckets")
T0 = NOW - timedelta(hours=2)
Scenario = Callable[[Any, Database], Awaitable[None]]


def run(mongo_uri: str, scenario: Scenario) -> None:
    async def go() -> None:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri, tz_aware=True)
        name = f"upkeep_store_{uuid.uuid4().hex[:12]}"
        store = mongo_buckets.MongoBucketStore(client, name, max_series=1000)
        try:
            await store.ensure_indexes()
            await scenario(store, client[name])
        finally:
            await client.drop_database(name)
            await store.aclose()

    asyncio.run(go())


async def trickle(store: Any, count: int) -> list[Metric]:
    """Single writes, as single POSTs store them: one-point buckets."""
    points: list[Metric] = []
    for n in range(count):
        points += await store.insert([MetricInput("cpu", (f"host:{n % 3}",), float(n), T0 + timedelta(seconds=10 * n))])
    return points


async def everything(store: Any) -> list[Metric]:
    return sorted(await store.find(MetricQuery(limit=1000)), key=lambda m: m.id)


def test_ids_answer_through_compaction_with_puts_and_deletes_racing_it(mongo_uri: str) -> None:
    async def scenario(store: Any, db: Database) -> None:
        points = await trickle(store, 150)
        expected = {m.id: m for m in points}
        gone: list[str] = []
        upkeep = BucketUpkeep(db, clock=Clock())

        async def compact() -> None:
            for _ in range(4):
                await upkeep.run_pass(from_oldest=True)
                await asyncio.sleep(0)

        async def edit() -> None:
            rng = random.Random(9)
            for m in rng.sample(points, 60):
                kind = rng.choice(("in place", "moved", "deleted"))
                if kind == "deleted":
                    assert await store.delete(m.id) == m
                    del expected[m.id]
                    gone.append(m.id)
                    continue
                tags, at = (
                    (m.tags, m.timestamp) if kind == "in place" else (("host:9",), m.timestamp + timedelta(seconds=1))
                )
                assert await store.replace(m.id, MetricInput(m.name, tags, m.value + 1000, at)) is not None
                expected[m.id] = Metric(m.id, m.name, tags, m.value + 1000, at)
                await asyncio.sleep(0)

        await asyncio.gather(compact(), edit())
        tally = await upkeep.run_pass(from_oldest=True)

        assert await db["buckets"].count_documents({}) < 20
        assert not tally.released_claims
        assert await everything(store) == sorted(expected.values(), key=lambda m: m.id)
        for id_, m in expected.items():
            assert await store.get(id_) == m
        for id_ in gone:
            assert await store.get(id_) is None
        moved = next(id_ for id_, m in expected.items() if m.tags == ("host:9",))
        assert await store.delete(moved) == expected[moved]  # a moved point, merged, still answers DELETE

    run(mongo_uri, scenario)


def test_after_a_sweep_the_store_holds_exactly_the_unexpired_points(mongo_uri: str) -> None:
    async def scenario(store: Any, db: Database) -> None:
        points = await trickle(store, 100)  # 10 s apart: 1,000 s either side of the cutoff below
        retention = NOW - (T0 + timedelta(seconds=500))
        cutoff = retention_cutoff(NOW, retention)
        assert cutoff is not None
        moved = points[10]  # expired, moved to a time still expired
        assert await store.replace(
            moved.id, MetricInput("cpu", ("host:9",), 1.0, moved.timestamp + timedelta(seconds=1))
        )
        await BucketUpkeep(db, clock=Clock()).run_pass()  # merged first, so the sweep trims merged buckets too

        await BucketUpkeep(db, retention=retention, clock=Clock()).run_pass()

        kept = [m for m in points if m.timestamp >= cutoff]
        assert 0 < len(kept) < len(points)
        assert await everything(store) == sorted(kept, key=lambda m: m.id)
        for m in points:
            assert await store.get(m.id) == (m if m.timestamp >= cutoff else None)
        assert await db["moved"].count_documents({}) == 0

    run(mongo_uri, scenario)
