"""BucketUpkeep: the background care of stored buckets: compaction, the RETENTION sweep and its rollups.

Every change follows the edit rules of docs/storage-design.md ("As built"): a bucket is changed only at the
revision it was read at and while nobody has claimed it, so a concurrent PUT or DELETE either lands first
(and this pass leaves that bucket for the next) or waits until the claim is gone.

- Compaction: small buckets of a series (a trickle of single writes makes buckets of a few points), older than
  a minute, are claimed, merged into one bucket that names them in `replaces`, and deleted. Each point keeps
  its (ts, seq) slot and its alias, so its id still resolves.
- Sweep: buckets that ended before the retention cutoff are deleted, and a bucket straddling it is trimmed to
  the points at or after it; with rollups on, the dropped points are first added to them (mongo_rollups.py).
- Recovery: a claim older than a minute was left by a pass that died. A compaction claim whose merged bucket
  exists is finished (the source deleted), otherwise released; a sweep claim is finished at its cutoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, DeleteOne, IndexModel, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from telemetry_server.config import Settings
from telemetry_server.errors import StorageUnavailable
from telemetry_server.models.retention import retention_cutoff
from telemetry_server.storage.bucket_columns import (
    MAX_POINTS,
    MAX_SPAN_MS,
    Slot,
    bucket_document,
    decode_columns,
    to_millis,
)
from telemetry_server.storage.mongo import Document, unavailable_when_unreachable
from telemetry_server.storage.mongo_lease import MongoLease
from telemetry_server.storage.mongo_rollups import Expired, MongoRollups

log = logging.getLogger("telemetry_server.upkeep")

# Buckets younger than this may still be joined by the trickle that made them: merging them now would only mean
# merging again a minute later.
COMPACT_AFTER = timedelta(minutes=1)
STALE_CLAIM = timedelta(minutes=1)
# A merged bucket is inserted only while its claims are younger than this, so a claim recovery has released as
# stale (and an edit may since have changed) is never merged: the other half of STALE_CLAIM is the margin.
CLAIM_DEADLINE = STALE_CLAIM / 2
# Past half full (in points or in span) a bucket is left as it is: rewriting it to add a few points costs more
# than the few extra buckets save, and it bounds how often one point is rewritten.
SMALL_POINTS = MAX_POINTS // 2
SMALL_SPAN_MS = MAX_SPAN_MS // 2
# The work of one pass, so that it ends well within its lease and reads a bounded amount.
BUCKETS_PER_PASS = 2000
LEASE = timedelta(minutes=5)

# PERF: a pass with nothing to do over 2,000 full buckets took 375-660 ms scanning them, 7-14 ms with these
# (one entry per bucket, not per point). Partial indexes (only small or claimed buckets) did not help: the engine
# does not plan with them.
UPKEEP_INDEXES = [
    IndexModel([("count", ASCENDING)], name="count"),
    IndexModel([("claimed_at", ASCENDING)], name="claimed_at"),
]
_COLUMNS = ("start", "end", "count", "sum", "min", "max", "ts", "v", "seq")
_CLAIM_FIELDS = {"claimed": "", "claimed_at": "", "claimed_cutoff": ""}
# Expired points may have rows in these (moves and pre-migration ids), keyed by the point's timestamp in ms.
_ROW_COLLECTIONS = ("moved", "legacy")

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class UpkeepTally:
    """What passes did (summed over passes by `add`)."""

    merged_buckets: int = 0
    merges: int = 0
    dropped_buckets: int = 0
    trimmed_buckets: int = 0
    dropped_points: int = 0
    dropped_rows: int = 0
    dropped_rollups: int = 0
    finished_claims: int = 0
    released_claims: int = 0

    def __bool__(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))

    def add(self, other: UpkeepTally) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def describe(self) -> str:
        return (
            f"merged {self.merged_buckets} small buckets into {self.merges}; "
            f"dropped {self.dropped_points} expired points ({self.dropped_buckets} buckets deleted, "
            f"{self.trimmed_buckets} trimmed), {self.dropped_rows} moved/legacy rows, "
            f"{self.dropped_rollups} expired rollups; stale claims: {self.finished_claims} finished, "
            f"{self.released_claims} released"
        )


def is_small(doc: Document) -> bool:
    span = to_millis(doc["end"]) - to_millis(doc["start"])
    return bool(doc["count"] < SMALL_POINTS and span < SMALL_SPAN_MS)


def plan_merges(docs: Sequence[Document]) -> list[list[Document]]:
    """The small buckets of one series in groups that each fit in one bucket; only groups of two or more.

    In order of start, a group takes the next bucket while the points stay within MAX_POINTS and the span
    within MAX_SPAN_MS, so every merge is a single insert (one document: all or nothing).
    """
    groups: list[list[Document]] = []
    current: list[Document] = []
    count = 0
    first = last = 0
    for doc in sorted(docs, key=lambda d: (d["start"], d["end"])):
        start, end = to_millis(doc["start"]), to_millis(doc["end"])
        if current and (count + doc["count"] > MAX_POINTS or max(last, end) - first > MAX_SPAN_MS):
            groups.append(current)
            current = []
        if not current:
            count, first, last = 0, start, end
        current.append(doc)
        count += doc["count"]
        last = max(last, end)
    groups.append(current)
    return [group for group in groups if len(group) > 1]


class BucketUpkeep:
    def __init__(
        self,
        database: AsyncDatabase[Document],
        retention: timedelta | None = None,
        rollups: MongoRollups | None = None,
        rollup_retention: timedelta | None = None,
        clock: Clock = _utc_now,
    ) -> None:
        self._database = database
        self._buckets = database["buckets"]
        self._retention = retention
        self._rollups = rollups if rollups is not None and rollups.sizes else None
        self._rollup_retention = rollup_retention
        self._clock = clock
        self._indexed = False
        self._after_series: int | None = None  # compaction resumes after this series (None: from the first)
        self.lease = MongoLease(database, "upkeep", LEASE)

    @property
    def caught_up(self) -> bool:
        """True when the last compaction read reached the last series (the next one starts from the first)."""
        return self._after_series is None

    @classmethod
    def from_settings(cls, database: AsyncDatabase[Document], settings: Settings) -> BucketUpkeep:
        return cls(database, settings.retention, MongoRollups(database, settings.rollups), settings.rollup_retention)

    async def run_periodically(self, period_seconds: float) -> None:
        """One pass per period, by whichever worker of whichever instance holds the lease then."""
        while True:
            await asyncio.sleep(period_seconds)
            try:
                tally = await self.run_leased_pass()
            except StorageUnavailable as exc:
                log.warning("upkeep pass not done: %s", exc.detail)
                continue
            except Exception:  # a fault in one pass must not end upkeep for the life of the worker
                log.exception("upkeep pass failed")
                continue
            if tally:
                log.info("upkeep: %s", tally.describe())

    async def run_leased_pass(self, *, compact: bool = True, sweep: bool = True) -> UpkeepTally | None:
        """One pass under the lease; None when another worker or instance holds it."""
        if not await self.lease.acquire():
            return None
        try:
            return await self.run_pass(compact=compact, sweep=sweep)
        finally:
            # Not raising here keeps a cancellation (shutdown) a cancellation; an unreleased lease just expires.
            with contextlib.suppress(StorageUnavailable, PyMongoError):
                await self.lease.release()

    async def run_pass(self, *, compact: bool = True, sweep: bool = True) -> UpkeepTally:
        """Recover stale claims, then sweep, then compact, each a bounded amount (the caller holds the lease)."""
        if not self._indexed:
            await self.ensure_indexes()
        tally = UpkeepTally()
        now = self._clock()
        await self.recover_claims(now, tally)
        if sweep:
            await self.sweep(now, tally)
        if compact:
            await self.compact(now, tally)
        return tally

    async def ensure_indexes(self) -> None:
        """The indexes upkeep reads by (idempotent), and the rollups' unique one, which their exactness needs."""
        async with unavailable_when_unreachable("creating upkeep indexes"):
            await self._buckets.create_indexes(UPKEEP_INDEXES)
        if self._rollups is not None:
            await self._rollups.ensure_indexes()
        self._indexed = True

    # -- compaction ------------------------------------------------------------------------------------------

    async def compact(self, now: datetime, tally: UpkeepTally) -> None:
        query: Document = {
            "count": {"$lt": SMALL_POINTS},
            "end": {"$lt": now - COMPACT_AFTER},
            "claimed": {"$exists": False},
        }
        if self._after_series is not None:
            query["series"] = {"$gt": self._after_series}
        cutoff = retention_cutoff(now, self._retention)
        if cutoff is not None:
            query["start"] = {"$gte": cutoff}  # the sweep's to trim or drop
        async with unavailable_when_unreachable("compaction read"):
            cursor = self._buckets.find(query).sort([("series", 1), ("end", -1)]).limit(BUCKETS_PER_PASS)
            docs = [doc async for doc in cursor]
        docs = self._resume_point(docs)
        by_series: dict[int, list[Document]] = {}
        for doc in await self._settled(docs):
            if is_small(doc):
                by_series.setdefault(doc["series"], []).append(doc)
        for series, small in by_series.items():
            for group in plan_merges(small):
                await self._merge(series, group, tally)

    def _resume_point(self, docs: list[Document]) -> list[Document]:
        """Which of a pass's buckets to work on, and where the next pass starts: every series gets its turn.

        A full read may end inside a series; that series is left whole to the next pass, unless it is the only
        one read (it has more small buckets than a pass reads: this pass merges some of them).
        """
        if len(docs) < BUCKETS_PER_PASS:
            self._after_series = None
            return docs
        last = docs[-1]["series"]
        if docs[0]["series"] == last:
            self._after_series = last
            return docs
        docs = [doc for doc in docs if doc["series"] != last]
        self._after_series = docs[-1]["series"]
        return docs

    async def _settled(self, docs: list[Document]) -> list[Document]:
        """The buckets whose `replaces` are all gone: one whose sources still exist (a compaction died before
        deleting them) is left until recovery has deleted them, or merging or dropping it would let them count
        again."""
        named = {source for doc in docs for source in doc.get("replaces", ())}
        if not named:
            return docs
        async with unavailable_when_unreachable("compaction read"):
            alive = {doc["_id"] async for doc in self._buckets.find({"_id": {"$in": list(named)}}, {"_id": 1})}
        return [doc for doc in docs if alive.isdisjoint(doc.get("replaces", ()))]

    async def _merge(self, series: int, group: list[Document], tally: UpkeepTally) -> None:
        merged_id = ObjectId()
        claimed_at = self._clock()
        sources = await self._claim(group, {"claimed": merged_id, "claimed_at": claimed_at})
        if len(sources) < 2 or self._clock() - claimed_at > CLAIM_DEADLINE:
            await self._release([doc["_id"] for doc in sources], merged_id)
            return
        source_ids = [doc["_id"] for doc in sources]
        slots = [slot for doc in sources for slot in decode_columns(doc).slots()]
        merged = {"_id": merged_id, **bucket_document(series, slots), "replaces": source_ids}
        async with unavailable_when_unreachable("compaction write"):
            await self._buckets.insert_one(merged)
            await self._buckets.delete_many({"_id": {"$in": source_ids}, "claimed": merged_id})
        tally.merged_buckets += len(sources)
        tally.merges += 1

    async def _claim(self, docs: list[Document], claim: Document) -> list[Document]:
        """Claim `docs` at the revs they were read at; the ones claimed, with their rev now."""
        ids = [doc["_id"] for doc in docs]
        async with unavailable_when_unreachable("claim of buckets"):
            # PERF: `_id $in` then a check of the revs, not an `$or` of (_id, rev) pairs, which the engine answers
            # by a collection scan (236 ms against 13 ms for 100 of 4,000 buckets, bench.upkeep_probe's setting).
            await self._buckets.update_many(
                {"_id": {"$in": ids}, "claimed": {"$exists": False}}, {"$set": claim, "$inc": {"rev": 1}}
            )
            cursor = self._buckets.find({"_id": {"$in": ids}, "claimed": claim["claimed"]}, {"rev": 1})
            revs = {doc["_id"]: doc["rev"] async for doc in cursor}
        # A claim bumps the rev once: a bucket claimed at any other rev was edited after it was read, and is
        # released; the others hold exactly what was read.
        held = [{**doc, "rev": doc["rev"] + 1} for doc in docs if revs.get(doc["_id"]) == doc["rev"] + 1]
        held_ids = {doc["_id"] for doc in held}
        await self._release([id_ for id_ in revs if id_ not in held_ids], claim["claimed"])
        return held

    async def _release(self, ids: list[Any], claim: ObjectId) -> None:
        if not ids:
            return
        async with unavailable_when_unreachable("compaction release"):
            await self._buckets.update_many(
                {"_id": {"$in": ids}, "claimed": claim}, {"$unset": _CLAIM_FIELDS, "$inc": {"rev": 1}}
            )

    # -- retention -------------------------------------------------------------------------------------------

    async def sweep(self, now: datetime, tally: UpkeepTally) -> None:
        cutoff = retention_cutoff(now, self._retention)
        if cutoff is None:
            return
        unclaimed = {"claimed": {"$exists": False}}
        # A bucket spans at most MAX_SPAN_MS (bucket_columns.seal), so one straddling the cutoff ends within
        # that much after it: both reads use the index on `end`.
        straddling_end = cutoff + timedelta(milliseconds=MAX_SPAN_MS)
        async with unavailable_when_unreachable("retention read"):
            cursor = self._buckets.find({"end": {"$lt": cutoff}, **unclaimed}).limit(BUCKETS_PER_PASS)
            docs = [doc async for doc in cursor]
            if len(docs) < BUCKETS_PER_PASS:
                straddling = {"end": {"$gte": cutoff, "$lte": straddling_end}, "start": {"$lt": cutoff}, **unclaimed}
                cursor = self._buckets.find(straddling).limit(BUCKETS_PER_PASS - len(docs))
                docs += [doc async for doc in cursor]
        docs = await self._settled(docs)
        if self._rollups is None:
            await self._drop_expired(docs, cutoff, None, tally)
        elif docs:
            # Rollups are added before the points are dropped: the claim makes that pair finishable after a crash.
            marker = ObjectId()
            claim = {"claimed": marker, "claimed_at": self._clock(), "claimed_cutoff": cutoff}
            await self._drop_expired(await self._claim(docs, claim), cutoff, marker, tally)
        cutoff_ms = to_millis(cutoff)
        async with unavailable_when_unreachable("retention of moved and legacy ids"):
            for name in _ROW_COLLECTIONS:
                result = await self._database[name].delete_many({"millis": {"$lt": cutoff_ms}})
                tally.dropped_rows += result.deleted_count
        if self._rollups is not None and self._rollup_retention is not None:
            tally.dropped_rollups += await self._rollups.expire(now - self._rollup_retention)

    async def _drop_expired(
        self, docs: list[Document], cutoff: datetime, claim: ObjectId | None, tally: UpkeepTally
    ) -> None:
        """Drop the points of `docs` before `cutoff` (rolled up first): buckets claimed as `claim`, or, without
        one, those still at the rev they were read at."""
        cutoff_ms = to_millis(cutoff)
        expired: list[Expired] = []
        writes: list[UpdateOne | DeleteOne] = []
        for doc in docs:
            slots = list(decode_columns(doc).slots())
            dropped = [slot for slot in slots if slot.millis < cutoff_ms]
            kept = [slot for slot in slots if slot.millis >= cutoff_ms]
            expired.append(Expired(doc["series"], dropped))
            match: Document = {"_id": doc["_id"]}
            match.update(
                {"claimed": claim} if claim is not None else {"rev": doc["rev"], "claimed": {"$exists": False}}
            )
            writes.append(UpdateOne(match, _trim(doc["series"], kept)) if kept else DeleteOne(match))
        if not writes:
            return
        updated = None
        if self._rollups is not None and claim is not None:
            updated = await self._rollups.add(expired, claim)
        async with unavailable_when_unreachable("retention write"):
            # Without a claim a bucket an edit changed since it was read is not matched: the next pass reads it.
            result = await self._buckets.bulk_write(writes, ordered=False)
        if self._rollups is not None and claim is not None and updated is not None:
            await self._rollups.settle(updated, claim)
        tally.dropped_buckets += result.deleted_count
        tally.trimmed_buckets += result.modified_count
        tally.dropped_points += sum(len(one.slots) for one in expired)

    # -- recovery --------------------------------------------------------------------------------------------

    async def recover_claims(self, now: datetime, tally: UpkeepTally) -> None:
        async with unavailable_when_unreachable("read of stale claims"):
            stale = [
                doc
                async for doc in self._buckets.find(
                    {"claimed": {"$exists": True}, "claimed_at": {"$lt": now - STALE_CLAIM}}
                ).limit(BUCKETS_PER_PASS)
            ]
        sweeps: dict[ObjectId, datetime] = {}  # claim -> its cutoff
        for doc in stale:
            if "claimed_cutoff" in doc:
                sweeps[doc["claimed"]] = doc["claimed_cutoff"]
                continue
            match = {"_id": doc["_id"], "claimed": doc["claimed"]}
            async with unavailable_when_unreachable("recovery of a stale claim"):
                merged = await self._buckets.find_one({"_id": doc["claimed"]}, {"_id": 1})
                if merged is not None:
                    await self._buckets.delete_one(match)
                    tally.finished_claims += 1
                    continue
            await self._release([doc["_id"]], doc["claimed"])
            tally.released_claims += 1
        for claim, cutoff in sweeps.items():
            # Every bucket of the claim, as the sweep that died had them: rollups take a claim's points whole.
            async with unavailable_when_unreachable("read of stale claims"):
                docs = [doc async for doc in self._buckets.find({"claimed": claim})]
            await self._drop_expired(docs, cutoff, claim, tally)
            tally.finished_claims += len(docs)


def _trim(series: int, kept: list[Slot]) -> Document:
    """The update that leaves a bucket holding only `kept`, releasing its claim."""
    trimmed = bucket_document(series, kept)
    update: Document = {
        "$set": {name: trimmed[name] for name in _COLUMNS},
        "$unset": dict(_CLAIM_FIELDS),
        "$inc": {"rev": 1},
    }
    if "alias" in trimmed:
        update["$set"]["alias"] = trimmed["alias"]
    else:
        update["$unset"]["alias"] = ""
    return update
