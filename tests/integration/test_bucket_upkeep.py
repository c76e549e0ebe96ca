"""Compaction, the retention sweep and rollups (storage/bucket_upkeep.py) on the real engine.

Buckets are built as writers build them (bucket_columns.bucket_document, series from SeriesRegistry, sequence
numbers from a writer id); edits follow the store's optimistic rule. Every check compares what is stored with
what was written, point by point.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from telemetry_server.models.point_id import SeqCounter, decode_point_id
from telemetry_server.models.retention import RollupSize, retention_cutoff
from telemetry_server.models.timestamps import EARLIEST, from_millis, to_millis
from telemetry_server.storage.bucket_columns import Slot, bucket_document, decode_columns, seal, without
from telemetry_server.storage.bucket_upkeep import BucketUpkeep, UpkeepTally
from telemetry_server.storage.mongo_rollups import Expired, MongoRollups, rollup_summaries
from telemetry_server.storage.mongo_series import SeriesRegistry

Document = dict[str, Any]
Database = AsyncDatabase[Document]
NOW = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
NOW_MS = to_millis(NOW)
DAY = timedelta(days=1)
LEGACY_ID = "65a1b2c3d4e5f60718293a4b"
# Edits the optimistic rule makes wait are retried; a compaction pass is far shorter than this.
EDIT_ATTEMPTS = 2000
# The point key the tests compare: (series, millis, seq, value, id).
PointKey = tuple[int, int, int, float, str]


class Clock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def run(mongo_uri: str, scenario: Callable[[Database], Awaitable[None]], name: str | None = None) -> None:
    """Run `scenario` against a database of its own, dropped afterwards."""

    async def main() -> None:
        client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_uri, tz_aware=True)
        name_ = name or f"upkeep_{uuid.uuid4().hex[:12]}"
        try:
            await scenario(client[name_])
        finally:
            await client.drop_database(name_)
            await client.close()

    asyncio.run(main())


class Writer:
    """Series and sequence numbers as a store instance gets them."""

    def __init__(self, registry: SeriesRegistry, seqs: SeqCounter) -> None:
        self.registry = registry
        self.seqs = seqs

    @classmethod
    async def open(cls, db: Database) -> Writer:
        registry = SeriesRegistry(db, 10_000)
        await registry.ensure_indexes()
        return cls(registry, SeqCounter(await registry.writer_id()))

    async def series(self, count: int) -> list[int]:
        keys = [(f"cpu.{n}", ("host:a",)) for n in range(count)]
        ids = await self.registry.ids_for(keys)
        return [ids[key] for key in keys]

    def slots(self, millis: list[int], alias_at: frozenset[int] = frozenset()) -> list[Slot]:
        seqs = self.seqs.take(len(millis))
        return [
            Slot(at, round(random.uniform(-100, 100), 3), seq, LEGACY_ID if at in alias_at else None)
            for at, seq in zip(millis, seqs, strict=True)
        ]


async def insert_buckets(db: Database, series: int, groups: list[list[Slot]]) -> None:
    await db["buckets"].insert_many([bucket_document(series, group) for group in groups])


async def stored_points(db: Database) -> Counter[PointKey]:
    points: Counter[PointKey] = Counter()
    async for doc in db["buckets"].find():
        columns = decode_columns(doc)
        for index, slot in enumerate(columns.slots()):
            points[(doc["series"], slot.millis, slot.seq, slot.value, columns.point_id(doc["series"], index))] += 1
    return points


async def resolve(db: Database, point_id: str) -> float | None:
    """The value of the point an id names, found from the id alone (decoded slot), skipping replaced buckets."""
    slot = decode_point_id(point_id)
    assert slot is not None
    at = from_millis(slot.millis)
    docs = [
        doc async for doc in db["buckets"].find({"series": slot.series, "start": {"$lte": at}, "end": {"$gte": at}})
    ]
    replaced = {source for doc in docs for source in doc.get("replaces", ())}
    for doc in docs:
        if doc["_id"] in replaced:
            continue
        columns = decode_columns(doc)
        index = columns.index_of(slot.millis, slot.seq)
        if index is not None:
            return columns.values[index]
    return None


async def delete_point(db: Database, point_id: str) -> None:
    """DELETE as the store does it: rewrite the bucket at its rev while unclaimed, else read again and retry."""
    slot = decode_point_id(point_id)
    assert slot is not None
    at = from_millis(slot.millis)
    for _ in range(EDIT_ATTEMPTS):
        docs = [
            doc async for doc in db["buckets"].find({"series": slot.series, "start": {"$lte": at}, "end": {"$gte": at}})
        ]
        replaced = {source for doc in docs for source in doc.get("replaces", ())}
        for doc in docs:
            columns = decode_columns(doc)
            index = columns.index_of(slot.millis, slot.seq)
            if doc["_id"] in replaced or index is None:
                continue
            match = {"_id": doc["_id"], "rev": doc["rev"], "claimed": {"$exists": False}}
            rest = without(columns, index)
            if not rest:
                if (await db["buckets"].delete_one(match)).deleted_count:
                    return
                continue
            new = bucket_document(doc["series"], rest)
            columns_only = {key: value for key, value in new.items() if key not in ("series", "rev")}
            unset = {} if "alias" in new else {"$unset": {"alias": ""}}
            result = await db["buckets"].update_one(match, {"$set": columns_only, "$inc": {"rev": 1}, **unset})
            if result.matched_count:
                return
        await asyncio.sleep(0.002)
    raise AssertionError(f"{point_id} could not be deleted")


async def die_holding_a_claim(
    db: Database, claim: ObjectId, at: datetime, which: Document | None = None, cutoff: datetime | None = None
) -> None:
    """What a pass that died leaves: its claim written down in `upkeep`, and the buckets claimed."""
    ids = [doc["_id"] async for doc in db["buckets"].find(which or {}, {"_id": 1})]
    record = {"at": at, "claims": [{"claim": claim, "buckets": ids}], **({"cutoff": cutoff} if cutoff else {})}
    await db["upkeep"].insert_one(record)
    update = {"$set": {"claimed": claim, "claimed_at": at}, "$inc": {"rev": 1}}
    await db["buckets"].update_many({"_id": {"$in": ids}}, update)


def trickle(writer: Writer, start_ms: int, count: int, every_ms: int = 1000) -> list[list[Slot]]:
    """Buckets of one to three points, as single POSTs and small group commits make them."""
    groups: list[list[Slot]] = []
    at = start_ms
    while sum(map(len, groups)) < count:
        size = min(random.choice((1, 1, 1, 2, 3)), count - sum(map(len, groups)))
        groups.append(writer.slots([at + n * every_ms for n in range(size)]))
        at += size * every_ms
    return groups


async def bucket_count(db: Database) -> int:
    return await db["buckets"].count_documents({})


def test_compaction_merges_small_buckets_and_every_id_still_resolves(mongo_uri: str) -> None:
    async def scenario(db: Database) -> None:
        writer = await Writer.open(db)
        series = await writer.series(3)
        start = NOW_MS - 3_600_000
        for one in series:
            await insert_buckets(db, one, trickle(writer, start, 300))
        aliased = writer.slots([start + 400_000], alias_at=frozenset({start + 400_000}))
        await insert_buckets(db, series[0], [aliased, writer.slots(list(range(start, start + 600)))])
        before = await stored_points(db)
        buckets_before = await bucket_count(db)

        tally = await BucketUpkeep(db, clock=Clock()).run_pass()

        assert tally.merges >= 3
        assert await bucket_count(db) == buckets_before - tally.merged_buckets + tally.merges
        assert await bucket_count(db) <= 3 + 1 + 1  # one per series, the full bucket, and at most one more
        after = await stored_points(db)
        assert after == before
        assert max(after.values()) == 1
        for _series, _millis, _seq, value, point_id in before:
            if point_id == LEGACY_ID:
                continue  # not derived from its slot: the store finds it through `legacy`
            assert await resolve(db, point_id) == value
        assert any(key[4] == LEGACY_ID for key in after)
        assert await db["buckets"].count_documents({"claimed": {"$exists": True}}) == 0

    run(mongo_uri, scenario)


def test_recent_and_half_full_buckets_are_left_alone(mongo_uri: str) -> None:
    async def scenario(db: Database) -> None:
        writer = await Writer.open(db)
        (one,) = await writer.series(1)
        recent = trickle(writer, NOW_MS - 30_000, 10)  # younger than a minute: the trickle may still join them
        half_full = [writer.slots(list(range(NOW_MS - 7_200_000, NOW_MS - 7_200_000 + 500)))]
        half_full.append(writer.slots(list(range(NOW_MS - 7_100_000, NOW_MS - 7_100_000 + 500))))
        await insert_buckets(db, one, recent + half_full)

        tally = await BucketUpkeep(db, clock=Clock()).run_pass()

        assert not tally
        assert await bucket_count(db) == len(recent) + 2

    run(mongo_uri, scenario)


def test_each_pass_reads_what_ended_since_the_last_and_merges_it_with_its_small_neighbours(mongo_uri: str) -> None:
    async def scenario(db: Database) -> None:
        writer = await Writer.open(db)
        (one,) = await writer.series(1)
        await insert_buckets(db, one, [writer.slots([NOW_MS - 600_000 + n * 60_000]) for n in range(8)])
        clock = Clock()
        upkeep = BucketUpkeep(db, clock=clock)
        assert (await upkeep.run_pass()).merges == 1
        assert (await db["upkeep"].find_one({"_id": "compaction"}) or {})["until"] == NOW - timedelta(minutes=1)

        await insert_buckets(db, one, [writer.slots([NOW_MS + 1000]), writer.slots([NOW_MS + 2000])])
        clock.now = NOW + timedelta(minutes=2)
        tally = await upkeep.run_pass()

        assert (tally.merges, tally.merged_buckets) == (1, 3)  # the two new ones and their neighbour before
        assert await bucket_count(db) == 1
        assert sum((await stored_points(db)).values()) == 10

    run(mongo_uri, scenario)


def test_deletes_racing_compaction_lose_and_double_nothing(mongo_uri: str) -> None:
    async def scenario(db: Database) -> None:
        writer = await Writer.open(db)
        series = await writer.series(4)
        for one in series:
            await insert_buckets(db, one, trickle(writer, NOW_MS - 7_200_000, 200, every_ms=10_000))
        before = await stored_points(db)
        doomed = random.sample(sorted(key for key in before if key[4] != LEGACY_ID), 80)
        upkeep = BucketUpkeep(db, clock=Clock())

        async def compact() -> UpkeepTally:
            done = UpkeepTally()
            for _ in range(3):
                done.add(await upkeep.run_pass())
                await asyncio.sleep(0)
            return done

        async def delete() -> None:
            for key in doomed:
                await delete_point(db, key[4])

        tally, _ = await asyncio.gather(compact(), delete())

        assert tally.merges > 0
        after = await stored_points(db)
        assert after == before - Counter(doomed)
        assert max(after.values()) == 1
        assert await db["buckets"].count_documents({"claimed": {"$exists": True}}) == 0

    run(mongo_uri, scenario)


def test_an_edit_between_read_and_claim_keeps_its_bucket_out_of_the_claim(mongo_uri: str) -> None:
    async def scenario(db: Database) -> None:
        writer = await Writer.open(db)
        (one,) = await writer.series(1)
        groups = [writer.slots([NOW_MS - 600_000 + n * 1000, NOW_MS - 600_000 + n * 1000 + 1]) for n in range(5)]
        await insert_buckets(db, one, groups)
        read = [doc async for doc in db["buckets"].find({"series": one}).sort("start", 1)]
        before = await stored_points(db)
        victim = next(key for key in before if key[1] == groups[2][0].millis)
        await delete_point(db, victim[4])  # lands after the compactor read the bucket, before it claims it

        claim = ObjectId()
        record, (held,) = await BucketUpkeep(db, clock=Clock())._claim([(claim, read)], NOW)

        assert [doc["_id"] for doc in held] == [doc["_id"] for n, doc in enumerate(read) if n != 2]
        assert await db["buckets"].count_documents({"claimed": claim}) == 4
        edited = await db["buckets"].find_one({"_id": read[2]["_id"]})
        assert edited is not None
        assert "claimed" not in edited  # released at once: the next edit need not wait
        written = await db["upkeep"].find_one({"_id": record})  # written down before claiming
        assert written is not None
        assert written["claims"] == [{"claim": claim, "buckets": [doc["_id"] for doc in read]}]

    run(mongo_uri, scenario)


def test_a_compaction_that_died_before_inserting_is_released_and_edits_go_on(mongo_uri: str) -> None:
    async def scenario(db: Database) -> None:
        writer = await Writer.open(db)
        (one,) = await writer.series(1)
        await insert_buckets(db, one, trickle(writer, NOW_MS - 3_600_000, 30))
        before = await stored_points(db)
        buckets = await bucket_count(db)
        await die_holding_a_claim(db, ObjectId(), NOW - timedelta(minutes=2))
        victim = sorted(before)[0]
        doc = await db["buckets"].find_one({}, sort=[("start", 1)])
        assert doc is not None
        edit = await db["buckets"].update_one(
            {"_id": doc["_id"], "rev": doc["rev"], "claimed": {"$exists": False}}, {"$inc": {"rev": 1}}
        )
        assert edit.matched_count == 0  # an edit waits while the claim holds

        tally = await BucketUpkeep(db, clock=Clock()).run_pass()

        assert tally.released_claims == buckets
        assert tally.merges >= 1  # released, then merged in the same pass
        await delete_point(db, victim[4])
        after = await stored_points(db)
        assert after == before - Counter([victim])
        assert max(after.values()) == 1

    run(mongo_uri, scenario)


def test_a_compaction_that_died_after_inserting_is_finished(mongo_uri: str) -> None:
    async def scenario(db: Database) -> None:
        writer = await Writer.open(db)
        (one,) = await writer.series(1)
        await insert_buckets(db, one, trickle(writer, NOW_MS - 3_600_000, 40))
        before = await stored_points(db)
        sources = [doc async for doc in db["buckets"].find()]
        merged_id = ObjectId()
        await die_holding_a_claim(db, merged_id, NOW - timedelta(seconds=10))
        slots = [slot for doc in sources for slot in decode_columns(doc).slots()]
        merged = {"_id": merged_id, **bucket_document(one, slots), "replaces": [doc["_id"] for doc in sources]}
        await db["buckets"].insert_one(merged)
        company = writer.slots([NOW_MS - 3_000_000, NOW_MS - 2_999_000])  # a small bucket to merge it with
        await insert_buckets(db, one, [company])
        written = before + Counter(
            {key: 1 for key in await stored_points(db) if key[1] in (company[0].millis, company[1].millis)}
        )
        buckets = await bucket_count(db)
        upkeep = BucketUpkeep(db, clock=Clock())

        # The claim is not stale yet: the merged bucket must not be merged or swept again while its sources live.
        assert not await upkeep.run_pass()
        assert await bucket_count(db) == buckets

        upkeep_later = BucketUpkeep(db, clock=Clock(NOW + timedelta(minutes=1)))
        tally = await upkeep_later.run_pass()

        assert tally.finished_claims == len(sources)
        assert tally.merges == 1  # then the merged bucket with the newer ones
        assert await bucket_count(db) == 1
        assert await stored_points(db) == written

    run(mongo_uri, scenario)


def sweep_fixture_points(writer: Writer, cutoff_ms: int) -> tuple[list[list[Slot]], list[list[Slot]]]:
    """Buckets wholly expired, one straddling the cutoff (with points 1 ms either side of it), fresh ones."""
    expired = [writer.slots(list(range(cutoff_ms - 10_800_000, cutoff_ms - 7_200_000, 60_000)))]
    expired += trickle(writer, cutoff_ms - 6_000_000, 12, every_ms=60_000)
    edge = [cutoff_ms - 600_000, cutoff_ms - 1, cutoff_ms, cutoff_ms + 1, cutoff_ms + 600_000]
    straddling = [writer.slots(edge, alias_at=frozenset({cutoff_ms + 1}))]
    fresh = trickle(writer, cutoff_ms + 3_600_000, 20, every_ms=30_000)
    return expired, straddling + fresh


def test_retention_drops_exactly_the_expired_points(mongo_uri: str) -> None:
    async def scenario(db: Database) -> None:
        writer = await Writer.open(db)
        series = await writer.series(2)
        cutoff = retention_cutoff(NOW, DAY)
        assert cutoff is not None
        cutoff_ms = to_millis(cutoff)
        for one in series:
            expired, kept = sweep_fixture_points(writer, cutoff_ms)
            await insert_buckets(db, one, expired + kept)
        for name in ("moved", "legacy"):
            await db[name].insert_many(
                [
                    {"series": series[0], "millis": cutoff_ms - 1, "seq": 1},
                    {"series": series[0], "millis": cutoff_ms, "seq": 2},
                ]
            )
        before = await stored_points(db)

        tally = await BucketUpkeep(db, retention=DAY, clock=Clock()).run_pass(compact=False)

        after = await stored_points(db)
        assert after == Counter({key: 1 for key in before if key[1] >= cutoff_ms})
        assert {key[1] for key in after} >= {cutoff_ms, cutoff_ms + 1}
        assert not any(key[1] == cutoff_ms - 1 for key in after)
        assert sum(1 for key in after if key[4] == LEGACY_ID) == 2  # aliases follow their point through the trim
        assert tally.trimmed_buckets == 2
        assert tally.dropped_points == sum(1 for key in before if key[1] < cutoff_ms)
        for name in ("moved", "legacy"):
            assert [row["millis"] async for row in db[name].find()] == [cutoff_ms]

    run(mongo_uri, scenario)


def brute_force(
    points: list[tuple[int, int, float]], size: RollupSize
) -> dict[tuple[int, int], tuple[int, float, float, float]]:
    """(series, interval start) -> (count, sum, min, max), computed directly from the points."""
    grouped: dict[tuple[int, int], list[float]] = {}
    for series, millis, value in points:
        grouped.setdefault((series, millis // size.millis * size.millis), []).append(value)
    return {key: (len(values), sum(values), min(values), max(values)) for key, values in grouped.items()}


async def rollups_by_key(db: Database, size: RollupSize) -> dict[tuple[int, int], tuple[int, float, float, float]]:
    summaries = await rollup_summaries(db, None, EARLIEST, NOW, size)
    return {(s.series, s.start_ms): (s.count, s.sum, s.min, s.max) for s in summaries}


def approx(table: dict[tuple[int, int], tuple[int, float, float, float]]) -> dict[tuple[int, int], Any]:
    return {key: (count, pytest.approx(total), low, high) for key, (count, total, low, high) in table.items()}


def test_rollups_equal_the_summaries_of_the_dropped_points_even_after_a_crash(mongo_uri: str) -> None:
    async def scenario(db: Database) -> None:
        writer = await Writer.open(db)
        series = await writer.series(3)
        sizes = (RollupSize.MINUTE, RollupSize.HOUR)
        for one in series:
            millis = sorted(
                random.sample(range(NOW_MS - DAY // timedelta(milliseconds=1) - 4 * 3_600_000, NOW_MS), 3000)
            )
            groups = seal(writer.slots(millis))
            await insert_buckets(db, one, groups + trickle(writer, millis[0] + 17, 25, every_ms=45_000))
        before = await stored_points(db)
        rollups = MongoRollups(db, sizes)
        cutoff = retention_cutoff(NOW, DAY)
        assert cutoff is not None
        # A sweep that died after adding two buckets' points to the minute rollups, before the hour ones.
        victims = [doc async for doc in db["buckets"].find({"end": {"$lt": cutoff}}).sort("end", 1).limit(2)]
        assert len(victims) == 2
        dead_claim = ObjectId()
        ids = [doc["_id"] for doc in victims]
        await die_holding_a_claim(db, dead_claim, NOW - timedelta(minutes=5), {"_id": {"$in": ids}}, cutoff)
        await rollups.ensure_indexes()
        expired = [Expired(doc["series"], list(decode_columns(doc).slots())) for doc in victims]
        await MongoRollups(db, (RollupSize.MINUTE,)).add(expired, dead_claim)

        clock = Clock()
        upkeep = BucketUpkeep(db, retention=DAY, rollups=rollups, clock=clock)
        tally = UpkeepTally()
        for later in (timedelta(0), timedelta(minutes=7), timedelta(hours=1, minutes=3)):
            clock.now = NOW + later
            tally.add(await upkeep.run_pass(compact=False))
            final_cutoff = to_millis(clock.now - DAY)
            dropped = [(key[0], key[1], key[3]) for key in before if key[1] < final_cutoff]
            for size in sizes:
                assert await rollups_by_key(db, size) == approx(brute_force(dropped, size)), (later, size)

        assert tally.finished_claims == 2
        assert await stored_points(db) == Counter({key: 1 for key in before if key[1] >= final_cutoff})
        for size in sizes:
            # Settled: an interval keeps only the marker of the sweep that created it.
            assert await db[size.collection].count_documents({"pending.1": {"$exists": True}}) == 0

    run(mongo_uri, scenario)


def test_rollups_older_than_their_retention_go(mongo_uri: str) -> None:
    async def scenario(db: Database) -> None:
        writer = await Writer.open(db)
        (one,) = await writer.series(1)
        old = NOW_MS - 10 * DAY // timedelta(milliseconds=1)
        await insert_buckets(
            db, one, [writer.slots([old, old + 3_600_000, NOW_MS - 2 * DAY // timedelta(milliseconds=1)])]
        )
        rollups = MongoRollups(db, (RollupSize.HOUR,))
        upkeep = BucketUpkeep(db, retention=DAY, rollups=rollups, rollup_retention=timedelta(days=5), clock=Clock())

        tally = await upkeep.run_pass()

        assert tally.dropped_points == 3
        assert tally.dropped_rollups == 2
        assert (await db["rollups_1h"].index_information())["series_start"]["unique"]  # made by the pass
        assert [s.count for s in await rollup_summaries(db, [one], EARLIEST, NOW, RollupSize.HOUR)] == [1]

    run(mongo_uri, scenario)


def test_one_upkeep_at_a_time(mongo_uri: str) -> None:
    async def scenario(db: Database) -> None:
        first, second = BucketUpkeep(db), BucketUpkeep(db)

        assert await first.lease.acquire()
        assert await first.lease.acquire()  # held here: extended
        assert await second.run_leased_pass() is None
        await first.lease.release()
        assert await second.run_leased_pass() is not None

    run(mongo_uri, scenario)


def test_the_cli_compacts_and_sweeps_once_to_the_end(mongo_uri: str) -> None:
    app_env = f"upkeep-cli-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "ENVIRONMENT": "test", "APP_ENV": app_env, "MONGO_URI": mongo_uri, "LOG_LEVEL": "warning"}

    def cli(command: str, **settings: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "telemetry_server", command],
            env={**env, **settings},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )

    async def scenario(db: Database) -> None:
        writer = await Writer.open(db)
        series = await writer.series(2)
        now_ms = to_millis(datetime.now(UTC))
        for one in series:
            await insert_buckets(db, one, trickle(writer, now_ms - 7_200_000, 100, every_ms=60_000))
        before = await stored_points(db)
        # A server's passes have read past these already: the command reads everything again.
        await db["upkeep"].insert_one({"_id": "compaction", "until": datetime.now(UTC)})

        compacted = cli("compact")

        assert compacted.stdout.startswith("compact: merged ")
        assert await bucket_count(db) == 2 * 2  # 100 points a minute apart: at most an hour in a bucket
        assert await stored_points(db) == before

        swept = cli("sweep", RETENTION="1h")

        assert swept.stdout.startswith("sweep: ")
        cutoff = now_ms - 3_600_000
        assert set(await stored_points(db)) <= {key for key in before if key[1] >= cutoff}
        assert await stored_points(db)

    run(mongo_uri, scenario, name=f"telemetry_server_{app_env}")
