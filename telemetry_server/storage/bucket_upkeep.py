"""BucketUpkeep: the background care of stored buckets: compaction, the RETENTION sweep and its rollups.

Every change follows the edit rules of docs/storage-design.md ("As built"): a bucket is changed only at the
revision it was read at and while nobody has claimed it, so a concurrent PUT or DELETE either lands first
(and this pass leaves that bucket for the next) or waits until the claim is gone.

- Compaction: small buckets of a series (a trickle of single writes makes buckets of a few points) that ended
  since the last pass, over a minute ago, and their small neighbours, are claimed, merged into one bucket that
  names them in `replaces`, and deleted. Each point keeps its (ts, seq) slot and its alias, so its id still
  resolves.
- Sweep: buckets that ended before the retention cutoff are deleted, and a bucket straddling it is trimmed to
  the points at or after it; with rollups on, the dropped points are first added to them (mongo_rollups.py).
- Recovery: every claim is first written down in `upkeep` (the buckets it is about to claim), and struck out
  when done. One older than a minute was left by a pass that died: a compaction whose merged bucket exists is
  finished (its sources deleted), otherwise released; a sweep is finished at its cutoff.

```
upkeep  {_id: "compaction", until: date}      where compaction has read buckets up to
        {_id, at: date, claims: [{claim: ObjectId, buckets: [_id]}], cutoff?: date}
                                              claims in flight (a compaction's: one per merged bucket, whose
                                              _id it is; a sweep's, with its cutoff)
```
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
from pymongo import ASCENDING, DeleteMany, DeleteOne, UpdateMany, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from telemetry_server.config import Settings
from telemetry_server.errors import StorageUnavailable
from telemetry_server.models.retention import retention_cutoff
from telemetry_server.models.timestamps import to_millis
from telemetry_server.storage.bucket_columns import MAX_POINTS, MAX_SPAN_MS, Slot, bucket_document, decode_columns
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
# The work of one pass, so that it ends well within its lease. Compaction reads bucket headers (a trickle over
# 100 series at 1 point/s makes 6,000 buckets a minute, merged at about 1,000/s on the loaded machine); the sweep
# decodes every bucket it reads.
HEADERS_PER_PASS = 10_000
SWEPT_PER_PASS = 2_000
# Merges claimed, written and deleted together: a few commands for all of them, not a few for each (a trickle
# over many series brings one or two buckets per series to merge each pass).
MERGES_PER_BATCH = 200
LEASE = timedelta(minutes=5)

# What compaction reads of a bucket to plan: not the columns. It reads buckets by `end`, with no index on
# `count`: an index beside the store's two costs small-bucket inserts a fifth to a half of their rate (measured:
# 10.5k -> 6.5k one-point buckets/s with `{count: 1}`, 4.7k with `{claimed_at: 1}` too, on the loaded machine).
_HEADER = {"series": 1, "start": 1, "end": 1, "count": 1, "rev": 1, "replaces": 1, "claimed": 1}
_SPAN = timedelta(milliseconds=MAX_SPAN_MS)
_COLUMNS = ("start", "end", "count", "sum", "min", "max", "ts", "v", "seq")
_CLAIM_FIELDS = {"claimed": "", "claimed_at": ""}
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
        self._state = database["upkeep"]
        self._indexed = False
        self._caught_up = True
        self.lease = MongoLease(database, "upkeep", LEASE)

    @property
    def caught_up(self) -> bool:
        """True when the last compaction pass read every bucket up to its horizon."""
        return self._caught_up

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

    async def run_leased_pass(
        self, *, compact: bool = True, sweep: bool = True, from_oldest: bool = False
    ) -> UpkeepTally | None:
        """One pass under the lease; None when another worker or instance holds it."""
        if not await self.lease.acquire():
            return None
        try:
            return await self.run_pass(compact=compact, sweep=sweep, from_oldest=from_oldest)
        finally:
            # Not raising here keeps a cancellation (shutdown) a cancellation; an unreleased lease just expires.
            with contextlib.suppress(StorageUnavailable, PyMongoError):
                await self.lease.release()

    async def run_pass(self, *, compact: bool = True, sweep: bool = True, from_oldest: bool = False) -> UpkeepTally:
        """Recover stale claims, then sweep, then compact, each a bounded amount (the caller holds the lease).

        `from_oldest`: compaction reads from the oldest bucket, not from where the last pass stopped.
        """
        if not self._indexed:
            await self.ensure_indexes()
        tally = UpkeepTally()
        now = self._clock()
        await self.recover_claims(now, tally)
        if sweep:
            await self.sweep(now, tally)
        if compact:
            await self.compact(now, tally, from_oldest)
        return tally

    async def ensure_indexes(self) -> None:
        """The rollups' unique index, which their exactness after a crash rests on (idempotent)."""
        if self._rollups is not None:
            await self._rollups.ensure_indexes()
        self._indexed = True

    # -- compaction ------------------------------------------------------------------------------------------

    async def compact(self, now: datetime, tally: UpkeepTally, from_oldest: bool = False) -> None:
        """Merge the small buckets among those that ended since the last pass, with their older small neighbours.

        Reads by `end` from where the last pass stopped (the oldest bucket, the first time) to a minute ago, at
        most HEADERS_PER_PASS of them. A bucket written over an hour late (its end already read past) is merged
        only with later ones, or by `telemetry-server compact`, which reads everything again.
        """
        horizon = now - COMPACT_AFTER
        async with unavailable_when_unreachable("upkeep state"):
            state = await self._state.find_one({"_id": "compaction"})
        since: datetime | None = state["until"] if state is not None and not from_oldest else None
        window: Document = {"$lt": horizon} if since is None else {"$gte": since, "$lt": horizon}
        async with unavailable_when_unreachable("compaction read"):
            cursor = self._buckets.find({"end": window}, _HEADER).sort("end", ASCENDING).limit(HEADERS_PER_PASS)
            headers = [doc async for doc in cursor]
        self._caught_up = len(headers) < HEADERS_PER_PASS
        until = horizon if self._caught_up else headers[-1]["end"]
        if since is not None and until <= since:  # a pass's worth of buckets ending in the same millisecond
            until = since + timedelta(milliseconds=1)
        cutoff = retention_cutoff(now, self._retention)
        small = [doc for doc in headers if _mergeable(doc, cutoff)]
        if small and since is not None:
            # Their older neighbours: small buckets of the same series within a bucket's span before the window.
            near = {
                "series": {"$in": sorted({doc["series"] for doc in small})},
                "end": {"$gte": since - _SPAN, "$lt": since},
            }
            async with unavailable_when_unreachable("compaction read"):
                small += [doc async for doc in self._buckets.find(near, _HEADER) if _mergeable(doc, cutoff)]
        settled = await self._settled(small)
        # Buckets a claim holds, or whose sources a dead compaction left, are read again once recovery is done
        # with them (within a minute): the next pass starts no later than the first of them.
        waiting = [doc["end"] for doc in headers if "claimed" in doc]
        settled_ids = {doc["_id"] for doc in settled}
        waiting += [doc["end"] for doc in small if doc["_id"] not in settled_ids]
        by_series: dict[int, list[Document]] = {}
        for doc in settled:
            by_series.setdefault(doc["series"], []).append(doc)
        plans = [(series, group) for series, candidates in by_series.items() for group in plan_merges(candidates)]
        for first in range(0, len(plans), MERGES_PER_BATCH):
            waiting += await self._merge(plans[first : first + MERGES_PER_BATCH], tally)
        until = min([until, *(end for end in waiting if since is None or end >= since)])
        async with unavailable_when_unreachable("upkeep state"):
            await self._state.update_one({"_id": "compaction"}, {"$set": {"until": until}}, upsert=True)

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

    async def _merge(self, plans: list[tuple[int, list[Document]]], tally: UpkeepTally) -> list[datetime]:
        """Merge each planned group into one bucket, all groups in a few commands; the ends of the groups that
        edits or claims kept from merging whole (to read again next pass)."""
        async with unavailable_when_unreachable("compaction read"):
            ids = [doc["_id"] for _, group in plans for doc in group]
            cursor = self._buckets.find({"_id": {"$in": ids}, "claimed": {"$exists": False}})
            fresh = {doc["_id"]: doc async for doc in cursor}
        waiting: list[datetime] = []
        series_of: list[int] = []
        groups: list[tuple[ObjectId, list[Document]]] = []
        for series, group in plans:
            docs = [fresh[doc["_id"]] for doc in group if doc["_id"] in fresh]
            if len(docs) < len(group):
                waiting.append(min(doc["end"] for doc in group))
            if len(docs) > 1:
                series_of.append(series)
                groups.append((ObjectId(), docs))
        if not groups:
            return waiting
        claimed_at = self._clock()
        record, held = await self._claim(groups, claimed_at)
        late = self._clock() - claimed_at > CLAIM_DEADLINE
        merges: list[Document] = []
        unmerged: list[tuple[ObjectId, Any]] = []
        for series, (merged_id, docs), sources in zip(series_of, groups, held, strict=True):
            if len(sources) < len(docs) or late:
                waiting.append(min(doc["end"] for doc in docs))
            if len(sources) < 2 or late:
                unmerged += [(merged_id, doc["_id"]) for doc in sources]
                continue
            slots = [slot for doc in sources for slot in decode_columns(doc).slots()]
            replaces = [doc["_id"] for doc in sources]
            merges.append({"_id": merged_id, **bucket_document(series, slots), "replaces": replaces})
        await self._release(unmerged)
        if merges:
            async with unavailable_when_unreachable("compaction write"):
                # A failure half way leaves the claims to recovery: a merged bucket that was stored is finished,
                # the others released.
                await self._buckets.insert_many(merges, ordered=False)
                deletes = [DeleteMany({"_id": {"$in": doc["replaces"]}, "claimed": doc["_id"]}) for doc in merges]
                await self._buckets.bulk_write(deletes, ordered=False)
            tally.merges += len(merges)
            tally.merged_buckets += sum(len(doc["replaces"]) for doc in merges)
        await self._strike_out(record)
        return waiting

    async def _claim(
        self, groups: list[tuple[ObjectId, list[Document]]], at: datetime, cutoff: datetime | None = None
    ) -> tuple[ObjectId, list[list[Document]]]:
        """Claim each group's buckets as its ObjectId, at the revs they were read at, after writing all the claims
        down in one record; the record's id and, per group, the buckets claimed (with their rev now)."""
        claims: list[Document] = [{"claim": claim, "buckets": [doc["_id"] for doc in docs]} for claim, docs in groups]
        record: Document = {"_id": ObjectId(), "at": at, "claims": claims}
        if cutoff is not None:
            record["cutoff"] = cutoff
        every = [id_ for claim in claims for id_ in claim["buckets"]]
        async with unavailable_when_unreachable("claim of buckets"):
            await self._state.insert_one(record)
            # PERF: `_id $in` then a check of the revs, not an `$or` of (_id, rev) pairs, which the engine answers
            # by a collection scan (236 ms against 13 ms for 100 of 4,000 buckets, bench.upkeep_probe's setting).
            claiming = [
                UpdateMany(
                    {"_id": {"$in": claim["buckets"]}, "claimed": {"$exists": False}},
                    {"$set": {"claimed": claim["claim"], "claimed_at": at}, "$inc": {"rev": 1}},
                )
                for claim in claims
            ]
            await self._buckets.bulk_write(claiming, ordered=False)
            cursor = self._buckets.find({"_id": {"$in": every}}, {"rev": 1, "claimed": 1})
            states = {doc["_id"]: (doc.get("claimed"), doc["rev"]) async for doc in cursor}
        # A claim bumps the rev once: a bucket claimed at any other rev was edited after it was read, and is
        # released; the others hold exactly what was read.
        held: list[list[Document]] = []
        stray: list[tuple[ObjectId, Any]] = []
        for claim, docs in groups:
            mine = [{**doc, "rev": doc["rev"] + 1} for doc in docs if states.get(doc["_id"]) == (claim, doc["rev"] + 1)]
            kept = {doc["_id"] for doc in mine}
            stray += [
                (claim, doc["_id"])
                for doc in docs
                if doc["_id"] not in kept and states.get(doc["_id"], (None, 0))[0] == claim
            ]
            held.append(mine)
        await self._release(stray)
        return record["_id"], held

    async def _strike_out(self, claim: ObjectId) -> None:
        async with unavailable_when_unreachable("upkeep state"):
            await self._state.delete_one({"_id": claim})

    async def _release(self, claimed: list[tuple[ObjectId, Any]]) -> None:
        """Release buckets, given as (claim, bucket _id): each only while it is still under that claim."""
        by_claim: dict[ObjectId, list[Any]] = {}
        for claim, id_ in claimed:
            by_claim.setdefault(claim, []).append(id_)
        if not by_claim:
            return
        releases = [
            UpdateMany({"_id": {"$in": ids}, "claimed": claim}, {"$unset": _CLAIM_FIELDS, "$inc": {"rev": 1}})
            for claim, ids in by_claim.items()
        ]
        async with unavailable_when_unreachable("release of claims"):
            await self._buckets.bulk_write(releases, ordered=False)

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
            cursor = self._buckets.find({"end": {"$lt": cutoff}, **unclaimed}).limit(SWEPT_PER_PASS)
            docs = [doc async for doc in cursor]
            if len(docs) < SWEPT_PER_PASS:
                straddling = {"end": {"$gte": cutoff, "$lte": straddling_end}, "start": {"$lt": cutoff}, **unclaimed}
                cursor = self._buckets.find(straddling).limit(SWEPT_PER_PASS - len(docs))
                docs += [doc async for doc in cursor]
        docs = await self._settled(docs)
        if self._rollups is None:
            await self._drop_expired(docs, cutoff, None, tally)
        elif docs:
            # Rollups are added before the points are dropped: the claim makes that pair finishable after a crash.
            marker = ObjectId()
            record, (held,) = await self._claim([(marker, docs)], self._clock(), cutoff)
            await self._drop_expired(held, cutoff, marker, tally)
            await self._strike_out(record)
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
            stale = [record async for record in self._state.find({"at": {"$lt": now - STALE_CLAIM}})]
        for record in stale:
            for entry in record["claims"]:
                claim = entry["claim"]
                async with unavailable_when_unreachable("recovery of a stale claim"):
                    held = {"_id": {"$in": entry["buckets"]}, "claimed": claim}
                    docs = [doc async for doc in self._buckets.find(held)]
                    if "cutoff" in record:
                        # Every bucket of the sweep that died, together: rollups take a claim's points whole.
                        await self._drop_expired(docs, record["cutoff"], claim, tally)
                        tally.finished_claims += len(docs)
                        continue
                    if await self._buckets.find_one({"_id": claim}, {"_id": 1}) is not None:
                        await self._buckets.delete_many(held)
                        tally.finished_claims += len(docs)
                        continue
                await self._release([(claim, doc["_id"]) for doc in docs])
                tally.released_claims += len(docs)
            await self._strike_out(record["_id"])


def _mergeable(doc: Document, cutoff: datetime | None) -> bool:
    """Small, unclaimed, and not the sweep's (partly expired)."""
    return "claimed" not in doc and is_small(doc) and (cutoff is None or doc["start"] >= cutoff)


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
