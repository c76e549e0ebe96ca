"""MongoBucketStore against the real engine: listings over bucket edges equal a brute-force sort, ids survive
every kind of PUT, moved and migrated points answer GET/PUT/DELETE, concurrent edits of one bucket lose nothing."""

from __future__ import annotations

import asyncio
import itertools
import random
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from telemetry_server.models.metric import Metric, MetricInput
from telemetry_server.models.metric_query import Cursor, MetricQuery, SortOrder
from telemetry_server.models.timestamps import to_millis
from telemetry_server.models.value_range import ValueRange
from telemetry_server.storage.bucket_columns import MAX_POINTS, Slot, bucket_document
from telemetry_server.storage.mongo_buckets import MongoBucketStore

T0 = datetime(2026, 11, 27, 10, tzinfo=UTC)
SERIES = [("cpu", ("host:a", "env:prod")), ("cpu", ("host:b", "env:prod")), ("mem", ("host:a",)), ("cpu", ())]
Database = AsyncDatabase[dict[str, Any]]
Scenario = Callable[[MongoBucketStore, Database], Awaitable[None]]


@pytest.fixture
def run(mongo_uri: str) -> Callable[[Scenario], None]:
    """Runs a scenario on a store over a database of its own, dropped afterwards."""

    def run_scenario(scenario: Scenario) -> None:
        async def go() -> None:
            client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri, tz_aware=True)
            database = f"bucket_store_{uuid.uuid4().hex[:12]}"
            store = MongoBucketStore(client, database, max_series=1000)
            try:
                await store.ensure_indexes()
                await scenario(store, client[database])
            finally:
                await client.drop_database(database)
                await store.aclose()

        asyncio.run(go())

    return run_scenario


def metric(series: int, at: datetime, value: float) -> MetricInput:
    name, tags = SERIES[series]
    return MetricInput(name, tags, value, at)


def brute_force(stored: list[Metric], query: MetricQuery) -> list[Metric]:
    desc = query.order is SortOrder.DESC
    found = [
        m
        for m in stored
        if (query.name is None or m.name == query.name)
        and set(query.tags) <= set(m.tags)
        and (query.start is None or m.timestamp >= query.start)
        and (query.end is None or m.timestamp < query.end)
        and (query.values.gt is None or m.value > query.values.gt)
        and (query.values.lte is None or m.value <= query.values.lte)
    ]
    found.sort(key=lambda m: (m.timestamp, m.id), reverse=desc)
    if query.cursor is not None:
        after = (query.cursor.timestamp, query.cursor.id)
        found = [m for m in found if ((m.timestamp, m.id) < after if desc else (m.timestamp, m.id) > after)]
    return found[: query.limit]


def test_listings_page_through_bucket_edges_as_a_brute_force_sort(run: Callable[[Scenario], None]) -> None:
    rng = random.Random(2026)

    async def scenario(store: MongoBucketStore, db: Database) -> None:
        stored: list[Metric] = []
        # Batches of every size, out of time order: buckets of one series overlap, some are cut at MAX_POINTS
        # or by span, many points share a millisecond.
        for size in (1, 1, 5, 40, 300, MAX_POINTS + 250, 3, 700):
            batch = [
                metric(rng.randrange(len(SERIES)), T0 + timedelta(milliseconds=rng.randrange(0, 7_200_000, 997)), v)
                for v in (float(rng.randrange(100)) for _ in range(size))
            ]
            batch += [metric(0, T0 + timedelta(seconds=30), 1.0)] * rng.randrange(3)  # same series, same ms
            stored += await store.insert(batch)
        assert len({m.id for m in stored}) == len(stored)

        for order, (name, tags), limit in itertools.product(
            SortOrder, [(None, ()), ("cpu", ()), ("cpu", ("env:prod",)), (None, ("host:a",))], [1, 13, 400]
        ):
            start = T0 + timedelta(minutes=rng.randrange(60)) if rng.random() < 0.5 else None
            end = T0 + timedelta(minutes=60 + rng.randrange(60)) if rng.random() < 0.5 else None
            values = rng.choice([ValueRange(), ValueRange(gt=50.0), ValueRange(lte=10.0)])
            query = MetricQuery(name, tags, start, end, limit, order, None, values)
            for _ in range(8):
                page = await store.find(query)
                assert page == brute_force(stored, query), query
                if len(page) < limit:
                    break
                query = MetricQuery(
                    name, tags, start, end, limit, order, Cursor(page[-1].timestamp, page[-1].id), values
                )

    run(scenario)


def test_a_listing_of_an_unknown_name_reads_nothing(run: Callable[[Scenario], None]) -> None:
    async def scenario(store: MongoBucketStore, db: Database) -> None:
        await store.insert([metric(0, T0, 1.0)])
        assert await store.find(MetricQuery(name="nothing")) == []
        assert await store.find(MetricQuery(tags=("host:a", "host:b"))) == []

    run(scenario)


def test_ids_survive_in_place_and_moving_puts(run: Callable[[Scenario], None]) -> None:
    async def scenario(store: MongoBucketStore, db: Database) -> None:
        first, *others = await store.insert([metric(0, T0 + timedelta(seconds=i), float(i)) for i in range(20)])
        id_ = first.id

        # In place: same series and time, another value.
        replaced = await store.replace(id_, metric(0, T0, 100.0))
        assert replaced is not None
        assert replaced[0] == first
        assert await store.get(id_) == Metric(id_, "cpu", SERIES[0][1], 100.0, T0)

        # Moved in time, then to another series, then back in place there.
        for step, target in enumerate([metric(0, T0 + timedelta(hours=5), 101.0), metric(2, T0, 102.0)]):
            replaced = await store.replace(id_, target)
            assert replaced is not None
            after = Metric(id_, target.name, target.tags, target.value, target.timestamp)
            assert replaced[1] == after
            assert await store.get(id_) == after, step
        assert await store.replace(id_, metric(2, T0, 103.0)) is not None

        everything = await store.find(MetricQuery(limit=1000))
        assert [m for m in everything if m.id == id_] == [Metric(id_, "mem", SERIES[2][1], 103.0, T0)]
        assert sorted(m.id for m in everything) == sorted([id_, *(m.id for m in others)])
        cpu = await store.find(MetricQuery(name="cpu", limit=1000))
        assert id_ not in {m.id for m in cpu}
        assert await store.get(others[3].id) == others[3]  # its bucket-mates are where they were

    run(scenario)


def test_moved_points_answer_get_put_and_delete(run: Callable[[Scenario], None]) -> None:
    async def scenario(store: MongoBucketStore, db: Database) -> None:
        [point] = await store.insert([metric(1, T0, 1.0)])
        assert await store.replace(point.id, metric(3, T0 + timedelta(days=1), 2.0)) is not None
        assert await store.replace(point.id, metric(3, T0 + timedelta(days=2), 3.0)) is not None  # moved twice

        assert await store.get(point.id) == Metric(point.id, "cpu", (), 3.0, T0 + timedelta(days=2))
        deleted = await store.delete(point.id)
        assert deleted == Metric(point.id, "cpu", (), 3.0, T0 + timedelta(days=2))
        assert await store.get(point.id) is None
        assert await store.replace(point.id, metric(3, T0, 4.0)) is None
        assert await store.delete(point.id) is None
        assert await store.find(MetricQuery(limit=10)) == []

    run(scenario)


def test_migrated_ids_resolve_through_legacy(run: Callable[[Scenario], None]) -> None:
    async def scenario(store: MongoBucketStore, db: Database) -> None:
        [neighbour] = await store.insert([metric(0, T0, 1.0)])  # creates the series
        series = int(neighbour.id[:8], 16)
        legacy = ObjectId()
        # What the migration writes for a point it moved from the old layout.
        await db["buckets"].insert_one(bucket_document(series, [Slot(to_millis(T0), 7.0, 42, str(legacy))]))
        await db["legacy"].insert_one({"_id": legacy, "series": series, "millis": to_millis(T0), "seq": 42})

        assert await store.get(str(legacy)) == Metric(str(legacy), "cpu", SERIES[0][1], 7.0, T0)
        page = await store.find(MetricQuery(limit=10))
        assert sorted(m.id for m in page) == sorted([neighbour.id, str(legacy)])
        assert await store.replace(str(legacy), metric(0, T0, 8.0)) is not None  # in place
        assert await store.replace(str(legacy), metric(2, T0, 9.0)) is not None  # moved
        assert await store.get(str(legacy)) == Metric(str(legacy), "mem", SERIES[2][1], 9.0, T0)
        assert await store.delete(str(legacy)) is not None
        assert await store.get(str(legacy)) is None
        assert await store.get(str(ObjectId())) is None

    run(scenario)


def test_concurrent_puts_and_deletes_on_one_bucket_lose_nothing(run: Callable[[Scenario], None]) -> None:
    """From two stores, as two workers would: each takes turns within itself, the rev check keeps them apart."""

    async def scenario(store: MongoBucketStore, db: Database) -> None:
        other = MongoBucketStore(db.client, db.name, max_series=1000)
        points = await store.insert([metric(0, T0 + timedelta(seconds=i), float(i)) for i in range(60)])
        kept, dropped, moved = points[:20], points[20:40], points[40:]
        workers = itertools.cycle([store, other])
        edits: list[Awaitable[object]] = [
            next(workers).replace(m.id, metric(0, m.timestamp, m.value + 1000)) for m in kept
        ]
        edits += [next(workers).delete(m.id) for m in dropped]
        edits += [next(workers).replace(m.id, metric(1, m.timestamp, m.value)) for m in moved]
        random.Random(3).shuffle(edits)

        answers = await asyncio.gather(*edits)

        assert all(answer is not None for answer in answers)
        page = await store.find(MetricQuery(limit=1000, order=SortOrder.ASC))
        expected = [Metric(m.id, m.name, m.tags, m.value + 1000, m.timestamp) for m in kept]
        expected += [Metric(m.id, "cpu", SERIES[1][1], m.value, m.timestamp) for m in moved]
        assert page == sorted(expected, key=lambda m: (m.timestamp, m.id))
        for m in dropped:
            assert await other.get(m.id) is None

    run(scenario)


def test_a_malformed_or_unknown_id_is_no_metric(run: Callable[[Scenario], None]) -> None:
    async def scenario(store: MongoBucketStore, db: Database) -> None:
        [point] = await store.insert([metric(0, T0, 1.0)])
        wrong_seq = point.id[:-1] + ("0" if point.id[-1] != "0" else "1")
        for id_ in (wrong_seq, "f" * 36, "0" * 36):  # "f" * 36: a time no datetime holds
            assert await store.get(id_) is None
            assert await store.delete(id_) is None
        assert await store.get(point.id) == point

    run(scenario)
