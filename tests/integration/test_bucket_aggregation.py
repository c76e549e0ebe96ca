"""BucketAggregationStore on a real engine: every aggregate equals a point-by-point computation over the same points.

Buckets are written as the store branch writes them (bucket_columns.bucket_document, series from
SeriesRegistry.ids_for), in batches whose times interleave, so windows cut through buckets, buckets of one
series overlap in time, and a compaction is caught half done (a merged bucket beside its sources).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from telemetry_server.errors import QueryTimedOut, QueryTooLarge
from telemetry_server.models.aggregate_rows import Row
from telemetry_server.models.aggregation import AggregateFn, AggregateQuery, parse_aggregate_query
from telemetry_server.models.point_id import SeqCounter
from telemetry_server.models.timestamps import from_millis, to_millis
from telemetry_server.storage.bucket_aggregation import BucketAggregationStore
from telemetry_server.storage.bucket_columns import Slot, bucket_document, seal
from telemetry_server.storage.mongo_buckets import INDEXES
from telemetry_server.storage.mongo_series import SeriesRegistry
from tests.brute_force import Reading, brute_force

T0 = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)
SERIES = [
    ("ev.login", ("env:prod", "host:a")),
    ("ev.login", ("host:b",)),
    ("ev.signup", ("env:dev", "host:a")),
    ("ev.logout", ()),
    ("cpu.load", ("host:a", "host:c")),
    ("cpu.load", ("env:prod", "host:b")),
]
Document = dict[str, Any]


class Stored:
    """The points written, as readings of their series."""

    def __init__(self) -> None:
        self.readings: list[Reading] = []
        self.series: dict[int, tuple[str, tuple[str, ...]]] = {}

    def brute_force(self, query: AggregateQuery) -> list[Row]:
        return brute_force(self.readings, query)


async def write(database: AsyncDatabase[Document], stored: Stored) -> None:
    await database["buckets"].create_indexes(INDEXES)  # as the bucket store ensures them at start
    registry = SeriesRegistry(database, 1000)
    ids = await registry.ids_for(SERIES)
    seqs = SeqCounter(await registry.writer_id())
    rng = random.Random(9)
    docs: list[Document] = []
    for key, series in ids.items():
        stored.series[series] = key
        at = to_millis(T0) - rng.randrange(3_600_000)
        slots = []
        for seq in seqs.take(rng.randrange(800, 2500)):
            at += rng.choice([500, 5_000, 40_000, 120_000])
            slots.append(Slot(at, float(rng.randrange(-20, 200)), seq))
        rng.shuffle(slots)  # batches of a group commit hold points of any time: buckets of a series overlap
        for start in range(0, len(slots), 300):
            docs += [bucket_document(series, bucket) for bucket in seal(slots[start : start + 300])]
        stored.readings += [Reading(from_millis(slot.millis), slot.value, *key) for slot in slots]
    await database["buckets"].insert_many(docs)


async def half_compacted(database: AsyncDatabase[Document], stored: Stored) -> None:
    """A merged bucket inserted while its sources are still there, and a source left behind by a compactor
    that stopped before deleting it, its merged bucket merged again since (not named in any `replaces`)."""
    buckets = database["buckets"]
    login = next(series for series, key in stored.series.items() if key == SERIES[0])
    sources = await buckets.find({"series": login, "count": {"$lt": 200}}).sort("start", 1).to_list(4)
    slots = [slot for doc in sources for slot in _slots(doc)]
    merged = bucket_document(login, slots) | {"replaces": [doc["_id"] for doc in sources[:3]]}
    await buckets.insert_one(merged)  # sources[3] is the one left behind: its points are in `merged` too


def _slots(doc: Document) -> list[Slot]:
    from telemetry_server.storage.bucket_columns import decode_columns

    return list(decode_columns(doc).slots())


@pytest.fixture(scope="module")
def database_name(mongo_uri: str) -> Iterator[tuple[str, Stored]]:
    name = f"agg_{uuid.uuid4().hex[:8]}"
    stored = Stored()

    async def setup() -> None:
        client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_uri, tz_aware=True)
        try:
            await write(client[name], stored)
            await half_compacted(client[name], stored)
        finally:
            await client.close()

    asyncio.run(setup())
    yield name, stored

    async def drop() -> None:
        client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_uri, tz_aware=True)
        try:
            await client.drop_database(name)
        finally:
            await client.close()

    asyncio.run(drop())


@asynccontextmanager
async def opened_store(mongo_uri: str, name: str, **options: Any) -> AsyncIterator[BucketAggregationStore]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_uri, tz_aware=True)
    try:
        yield BucketAggregationStore(client[name], SeriesRegistry(client[name], 1000), **options)
    finally:
        await client.close()


def run(mongo_uri: str, name: str, queries: list[AggregateQuery], **options: Any) -> list[list[Row]]:
    async def go() -> list[list[Row]]:
        async with opened_store(mongo_uri, name, **options) as store:
            return [await store.aggregate(query, 10_000) for query in queries]

    return asyncio.run(go())


def approx(rows: list[Row]) -> list[tuple[Any, ...]]:
    return [(row.bucket, row.group, pytest.approx(row.value, rel=1e-12), row.count) for row in rows]


WINDOW = [("from", "2026-01-05T03:17:41.250Z"), ("to", "2026-01-06T05:02:03Z")]
QUERIES = [
    [("fn", "count")],
    [("fn", "sum"), ("name", "ev.login")],
    [("fn", "avg"), ("name_prefix", "ev."), ("group_by", "name")],
    [("fn", "count"), ("name_prefix", "ev."), ("group_by", "name"), ("top", "2")],
    [("fn", "min"), ("tag", "host:a"), ("group_by", "host"), ("top", "1"), ("order", "asc")],
    [("fn", "max"), ("name", "cpu.load"), ("bucket", "15m")],
    [("fn", "count"), ("bucket", "1h"), ("tz", "Asia/Kathmandu"), ("group_by", "env")],
    [("fn", "sum"), ("bucket", "1d"), ("tz", "America/New_York")],
    [("fn", "p95"), ("name", "cpu.load")],
    [("fn", "p50"), ("group_by", "host"), ("bucket", "6h")],
    [("fn", "p99"), ("name_prefix", "ev."), ("group_by", "name"), ("top", "3")],
    [("fn", "count"), ("value_gt", "100")],
    [("fn", "avg"), ("value_gte", "0"), ("value_lt", "50"), ("group_by", "name"), ("bucket", "30m")],
    [("fn", "p90"), ("value_lte", "150"), ("tag", "env:prod")],
    [("fn", "count"), ("name", "no.such.metric")],
    [("fn", "count"), ("tag", "host:a"), ("tag", "env:dev")],
]


@pytest.mark.parametrize("params", QUERIES, ids=lambda params: "&".join(f"{k}={v}" for k, v in params))
@pytest.mark.parametrize("window", ["cut", "open"])
def test_aggregates_equal_a_point_by_point_computation(
    mongo_uri: str, database_name: tuple[str, Stored], params: list[tuple[str, str]], window: str
) -> None:
    name, stored = database_name
    query = parse_aggregate_query([*(WINDOW if window == "cut" else []), *params], T0)
    (rows,) = run(mongo_uri, name, [query])
    assert approx(rows) == approx(stored.brute_force(query))


def test_random_windows_and_queries(mongo_uri: str, database_name: tuple[str, Stored]) -> None:
    name, stored = database_name
    rng = random.Random(4)
    queries = []
    for _ in range(60):
        start = T0 + timedelta(milliseconds=rng.randrange(-3_600_000, 40 * 3_600_000))
        params = [("from", start.isoformat()), ("to", (start + timedelta(minutes=rng.randrange(1, 900))).isoformat())]
        params += [("fn", rng.choice(list(AggregateFn)).value)]
        params += rng.choice([[], [("name_prefix", "ev.")], [("tag", "host:a")], [("name", "cpu.load")]])
        params += rng.choice([[], [("bucket", "5m")], [("bucket", "1h"), ("tz", "Europe/Paris")]])
        params += rng.choice([[], [("group_by", "name")], [("group_by", "host")]])
        params += rng.choice([[], [], [("value_gte", "50")]])
        queries.append(parse_aggregate_query(params, T0))
    for query, rows in zip(queries, run(mongo_uri, name, queries), strict=True):
        assert approx(rows) == approx(stored.brute_force(query)), query.url()


def test_too_many_rows_are_cut_at_one_more_than_allowed(mongo_uri: str, database_name: tuple[str, Stored]) -> None:
    name, _ = database_name
    query = AggregateQuery(fn=AggregateFn.COUNT, bucket=parse_aggregate_query([("bucket", "1m")], T0).bucket)

    async def go() -> list[Row]:
        async with opened_store(mongo_uri, name) as store:
            return await store.aggregate(query, 50)

    assert len(asyncio.run(go())) == 51


def test_a_percentile_over_too_many_values_is_refused(mongo_uri: str, database_name: tuple[str, Stored]) -> None:
    name, _ = database_name
    with pytest.raises(QueryTooLarge, match="percentile"):
        run(mongo_uri, name, [AggregateQuery(fn=AggregateFn.P50)], max_values=500)


def test_an_aggregate_past_its_time_limit_stops(mongo_uri: str, database_name: tuple[str, Stored]) -> None:
    name, _ = database_name

    class SlowToRead(BucketAggregationStore):
        async def _heads(self, series: set[int] | None, plan: Any) -> list[Document]:
            heads = await super()._heads(series, plan)
            await asyncio.sleep(0.5)  # the summaries took all the time there was
            return heads

    async def go() -> None:
        client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_uri, tz_aware=True)
        try:
            store = SlowToRead(client[name], SeriesRegistry(client[name], 1000))
            await store.aggregate(AggregateQuery(fn=AggregateFn.P50), 10_000, time_limit=0.4)
        finally:
            await client.close()

    with pytest.raises(QueryTimedOut):
        asyncio.run(go())


def test_a_bucket_compacted_between_the_two_reads_restarts_the_aggregate(
    mongo_uri: str, database_name: tuple[str, Stored]
) -> None:
    """The columns read finds a summary's bucket gone (merged and deleted): the aggregate reads again."""
    name, stored = database_name
    start = T0 + timedelta(minutes=7)
    query = AggregateQuery(fn=AggregateFn.SUM, name="cpu.load", group_by="host", start=start)
    expected = approx(stored.brute_force(query))

    class CompactingMidway(BucketAggregationStore):
        reads = 0

        async def _heads(self, series: set[int] | None, plan: Any) -> list[Document]:
            heads = await super()._heads(series, plan)
            self.reads += 1
            if self.reads == 1:  # compact the edge bucket (the one decoded) before its columns are read
                cut = to_millis(start)  # the store reads dates as milliseconds
                edge = next(doc for doc in heads if int(doc["start"]) < cut <= int(doc["end"]))
                buckets = self._buckets
                source = await buckets.find_one({"_id": edge["_id"]})
                assert source is not None
                merged = bucket_document(source["series"], _slots(source)) | {"replaces": [source["_id"]]}
                await buckets.insert_one(merged)
                await buckets.delete_one({"_id": source["_id"]})
            return heads

    async def go() -> tuple[list[Row], int]:
        client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_uri, tz_aware=True)
        try:
            store = CompactingMidway(client[name], SeriesRegistry(client[name], 1000))
            return await store.aggregate(query, 10_000), store.reads
        finally:
            await client.close()

    rows, reads = asyncio.run(go())
    assert reads == 2
    assert approx(rows) == expected


def test_metric_names_come_from_the_series(mongo_uri: str, database_name: tuple[str, Stored]) -> None:
    name, _ = database_name

    async def go() -> list[str]:
        async with opened_store(mongo_uri, name) as store:
            return await store.metric_names()

    assert asyncio.run(go()) == ["cpu.load", "ev.login", "ev.logout", "ev.signup"]


def test_buckets_are_read_before_their_indexes_exist(mongo_uri: str) -> None:
    """Indexes are ensured in the background at start: an aggregate that comes first still has its answer."""
    name = f"agg_{uuid.uuid4().hex[:8]}"

    async def go() -> list[Row]:
        client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_uri, tz_aware=True)
        try:
            registry = SeriesRegistry(client[name], 10)
            series = (await registry.ids_for([("cpu", ())]))[("cpu", ())]
            slots = [Slot(to_millis(T0) + i * 1000, float(i), i) for i in range(10)]
            await client[name]["buckets"].insert_one(bucket_document(series, slots))
            store = BucketAggregationStore(client[name], SeriesRegistry(client[name], 10))
            query = AggregateQuery(fn=AggregateFn.SUM, name="cpu", start=T0 + timedelta(seconds=5))
            return await store.aggregate(query, 10)
        finally:
            await client.drop_database(name)
            await client.close()

    assert asyncio.run(go()) == [Row(35.0, 5)]
