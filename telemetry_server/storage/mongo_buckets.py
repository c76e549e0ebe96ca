"""MongoBucketStore: metrics as buckets of packed columns, one series each (docs/storage-design.md, "As built").

```
buckets {series, start, end, count, sum, min, max, ts, v, seq, alias?, rev, claimed?, replaces?}
moved   {_id: "<id>", series, millis, seq}    where a PUT moved a point to (another series or time)
legacy  {_id: ObjectId, series, millis, seq}  ids issued before the time-series layout (the migration fills it)
```

Every bucket spans at most MAX_SPAN_MS (`seal`), which bounds the index ranges a read scans: a point at `t` can
only be in a bucket with start in [t - span, t] and end in [t, t + span].
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import pymongo
from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel
from pymongo.asynchronous.command_cursor import AsyncCommandCursor
from pymongo.errors import DuplicateKeyError

from telemetry_server.config import ReadPreference
from telemetry_server.errors import StorageUnavailable
from telemetry_server.models.metric import Metric, MetricInput
from telemetry_server.models.metric_query import MetricQuery, SortOrder
from telemetry_server.models.point_id import PointId, SeqCounter, decode_point_id, is_legacy_id
from telemetry_server.models.retention import clamp_start, retention_cutoff
from telemetry_server.models.timestamps import from_millis, to_millis, utc_now
from telemetry_server.storage.bucket_columns import (
    MAX_SPAN_MS,
    Columns,
    Slot,
    bucket_document,
    decode_columns,
    seal,
    without,
)
from telemetry_server.storage.bucket_pages import PageMerge
from telemetry_server.storage.mongo import Document, insert_idempotent, unavailable_when_unreachable
from telemetry_server.storage.mongo_series import SeriesKey, SeriesRegistry
from telemetry_server.storage.series_index import Series

# No index on `start`: two more cost a third of the insert rate of small buckets (measured), and sort=asc is
# served by `end` (PageMerge.edge).
INDEXES = [
    IndexModel([("series", ASCENDING), ("end", DESCENDING)], name="series_end"),
    IndexModel([("end", DESCENDING)], name="end"),
]
SPAN = timedelta(milliseconds=MAX_SPAN_MS)
# The last moment a datetime holds: an id may name a later one (its millis are a u48), which no point has.
_LAST_MILLIS = to_millis(datetime.max.replace(tzinfo=UTC))
_LISTING_FIELDS = {"series": 1, "start": 1, "end": 1, "count": 1, "ts": 1, "v": 1, "seq": 1, "alias": 1, "replaces": 1}
# The first batch of a listing is small (a full bucket is ~20 KiB): one bucket per series it reads (the newest
# page usually takes from each), within these bounds; later ones are sized from the points per bucket seen so
# far, so a listing over many small buckets needs few round trips.
_FIRST_BATCH = 4
_FIRST_BATCH_MAX = 32
_MAX_BATCH = 256
# An edit that keeps meeting a concurrent one (another edit, a compaction's claim) gives up after this many
# rounds with a 503: the client may retry, nothing was half done.
_EDIT_ATTEMPTS = 8
_EDIT_BACKOFF_SECONDS = 0.005
_EDIT_LOCKS = 64


class Located(NamedTuple):
    """Where a point is: its bucket (as read, with its rev), the bucket's columns and its position there."""

    doc: Document
    columns: Columns
    position: int
    # How it was found: the moved row (its slot) when a PUT moved it, else None.
    moved_from: PointId | None

    @property
    def series(self) -> int:
        return int(self.doc["series"])

    @property
    def millis(self) -> int:
        return self.columns.millis[self.position]

    @property
    def seq(self) -> int:
        return self.columns.seqs[self.position]


class MongoBucketStore:
    def __init__(
        self,
        client: AsyncMongoClient[Document],
        database: str,
        max_series: int,
        retention: timedelta | None = None,
        clock: Callable[[], datetime] = utc_now,
        listing_read_preference: ReadPreference = ReadPreference.PRIMARY,
    ) -> None:
        self._client = client
        self._retention = retention
        self._clock = clock
        db = client[database]
        self.registry = SeriesRegistry(db, max_series)
        self._buckets = db["buckets"]
        # Listings alone may read from secondaries (MONGO_READ_PREFERENCE): an edit finds its point, and a write's
        # series, on the primary, where the acknowledged write is.
        self._listed = self._buckets.with_options(
            read_preference=getattr(pymongo.ReadPreference, listing_read_preference.name)
        )
        self._moved = db["moved"]
        self._legacy = db["legacy"]
        self._seqs: SeqCounter | None = None
        self._new_writer = asyncio.Lock()
        self._edit_locks = [asyncio.Lock() for _ in range(_EDIT_LOCKS)]

    async def ensure_indexes(self) -> None:
        """The collections' indexes, then this worker's series index, loaded ahead of the first filter that needs
        it (run in the background at start)."""
        await self.registry.ensure_indexes()
        async with unavailable_when_unreachable("creating bucket indexes"):
            await self._buckets.create_indexes(INDEXES)
        await self.registry.refresh()

    async def ping(self) -> None:
        async with unavailable_when_unreachable("ping"):
            await self._client.admin.command("ping")

    async def aclose(self) -> None:
        await self._client.close()

    # Writes

    async def insert(self, metrics: Sequence[MetricInput]) -> list[Metric]:
        """One insert_many of whole buckets (never a $push into a stored one): acknowledged when it is."""
        series_ids = await self.registry.ids_for((m.name, m.tags) for m in metrics)
        seqs = await self._take_seqs(len(metrics))
        by_series: dict[int, list[Slot]] = {}
        stored: list[Metric] = []
        for metric, seq in zip(metrics, seqs, strict=True):
            series = series_ids[(metric.name, metric.tags)]
            millis = to_millis(metric.timestamp)
            by_series.setdefault(series, []).append(Slot(millis, metric.value, seq))
            id_ = PointId(series, millis, seq).encode()
            stored.append(Metric(id_, metric.name, metric.tags, metric.value, metric.timestamp))
        docs = [bucket_document(series, part) for series, slots in by_series.items() for part in seal(slots)]
        async with unavailable_when_unreachable("insert"):
            await insert_idempotent(self._buckets, docs)
        return stored

    async def _take_seqs(self, count: int) -> range:
        while True:
            counter = self._seqs
            if counter is not None:
                try:
                    return counter.take(count)
                except OverflowError:
                    pass
            async with self._new_writer:
                if self._seqs is counter:  # not replaced while this one waited
                    self._seqs = SeqCounter(await self.registry.writer_id())

    # Listings

    def _cutoff(self) -> datetime | None:
        """Points before it have expired: no answer holds them, even before the sweeper has dropped them."""
        return retention_cutoff(self._clock(), self._retention)

    async def find(self, query: MetricQuery, time_limit: float | None = None) -> list[Metric]:
        cutoff = self._cutoff()
        if cutoff is not None:
            query = replace(query, start=clamp_start(query.start, cutoff))
            if query.end is not None and query.end <= cutoff:
                return []
        async with unavailable_when_unreachable("find", time_limit):
            index = self.registry.index
            series: set[int] | None = None
            if query.name is not None or query.tags:
                await self.registry.refresh()  # every series an acknowledged write created, on any worker
                series = index.match(query.name, None, query.tags)
                if not series:
                    return []
            merge = PageMerge(query, index.get)
            found = bucket_filter(query, series)
            order = -1 if query.order is SortOrder.DESC else 1
            pipeline = [{"$match": found}, {"$sort": {"end": order}}, {"$project": _LISTING_FIELDS}]
            first = _FIRST_BATCH if series is None else min(max(_FIRST_BATCH, len(series) + 1), _FIRST_BATCH_MAX)
            cursor = await self._listed.aggregate(pipeline, batchSize=first)
            try:
                last_end = await self._feed(merge, cursor)
            finally:
                await cursor.close()
            edge = merge.edge()
            if last_end is not None and edge is not None:  # sort=asc, page filled: the buckets overlapping it
                overlapping = self._listed.find(overlap_filter(found, last_end, edge), _LISTING_FIELDS)
                async with overlapping:
                    async for doc in overlapping:
                        await self._add(merge, doc)
        return merge.finish()

    async def _feed(self, merge: PageMerge, cursor: AsyncCommandCursor[Document]) -> datetime | None:
        """Add buckets until the page is full (sort=desc) or could be (sort=asc: then the end of the last bucket
        read is returned); each later batch sized for the points still wanted."""
        points = buckets = 0
        async for doc in cursor:
            await self._add(merge, doc)
            if merge.full:
                return None
            if merge.edge() is not None and not merge.releasing:
                last_end: datetime = doc["end"]
                return last_end
            points += doc["count"]
            buckets += 1
            wanted = merge.missing + 1
            batch = max(_FIRST_BATCH, buckets, math.ceil(wanted * buckets / max(points, 1)))
            cursor.batch_size(min(_MAX_BATCH, batch))
        return None

    async def _add(self, merge: PageMerge, doc: Document) -> None:
        """A filter's series are all in the index (`find` refreshed it); without a filter, the series of a bucket
        are read as buckets name them."""
        if doc["series"] not in self.registry.index:
            await self.registry.name([doc["series"]])
        merge.add(doc)

    # By id

    async def get(self, id_: str) -> Metric | None:
        async with unavailable_when_unreachable("find by id"):
            found = await self._locate(id_)
            return None if found is None else await self._metric(id_, found)

    async def replace(self, id_: str, metric: MetricInput) -> tuple[Metric, Metric] | None:
        """Replace and return (before, after), or None when there is no such metric. The id stays the same."""
        key: SeriesKey = (metric.name, metric.tags)
        millis = to_millis(metric.timestamp)

        async def change(found: Located) -> bool:
            series = (await self.registry.ids_for([key]))[key]
            if found.series == series and found.millis == millis:
                slots = list(found.columns.slots())
                slots[found.position] = slots[found.position]._replace(value=metric.value)
                return await self._rewrite(found.doc, slots)
            return await self._move(id_, found, series, Slot(millis, metric.value, 0, id_))

        before = await self._edit(id_, "replace", change)
        if before is None:
            return None
        return before, Metric(id_, metric.name, metric.tags, metric.value, metric.timestamp)

    async def delete(self, id_: str) -> Metric | None:
        async def change(found: Located) -> bool:
            if not await self._rewrite(found.doc, without(found.columns, found.position)):
                return False
            if found.moved_from is not None:
                await self._moved.delete_one({"_id": id_})
            return True

        return await self._edit(id_, "delete", change)

    async def _edit(self, id_: str, action: str, change: Callable[[Located], Awaitable[bool]]) -> Metric | None:
        """Apply `change` to the point until no concurrent edit comes between its read and its write; the point
        as it was before, or None when there is none."""
        async with unavailable_when_unreachable(action), self._edit_lock(id_):
            for attempt in range(_EDIT_ATTEMPTS):
                found = await self._locate(id_)
                if found is None:
                    return None
                before = await self._metric(id_, found)
                if await change(found):
                    return before
                await _back_off(attempt)
        raise StorageUnavailable("the metric kept changing under concurrent edits; retry")

    def _edit_lock(self, id_: str) -> asyncio.Lock:
        """Edits in one worker of points likely in one bucket (one series) take turns: the rev check alone
        would make many of them retry, each round letting one through. Other workers are kept apart by it."""
        slot = decode_point_id(id_)
        return self._edit_locks[hash(slot.series if slot is not None else id_) % len(self._edit_locks)]

    async def _locate(self, id_: str) -> Located | None:
        """Where the point `id_` is, unless it has expired."""
        found = await self._locate_stored(id_)
        cutoff = self._cutoff()
        if found is not None and cutoff is not None and found.millis < to_millis(cutoff):
            return None
        return found

    async def _locate_stored(self, id_: str) -> Located | None:
        """The decoded slot, else where `moved` says a PUT put it, else (24 hex) the migrated slot."""
        slot = decode_point_id(id_)
        if slot is not None:
            found = await self._in_bucket(id_, slot, None)
            if found is not None:
                return found
        row = await self._moved.find_one({"_id": id_})
        if row is not None:
            moved = PointId(row["series"], row["millis"], row["seq"])
            return await self._in_bucket(id_, moved, moved)
        if slot is None and is_legacy_id(id_):
            row = await self._legacy.find_one({"_id": ObjectId(id_)})
            if row is not None:
                return await self._in_bucket(id_, PointId(row["series"], row["millis"], row["seq"]), None)
        return None

    async def _in_bucket(self, id_: str, slot: PointId, moved_from: PointId | None) -> Located | None:
        """The bucket of `slot`'s series holding the point (slot's millis and seq) whose id is `id_`."""
        if slot.millis > _LAST_MILLIS:
            return None
        at = from_millis(slot.millis)
        holding: Document = {"series": slot.series}
        holding.update(end={"$gte": at, "$lte": _plus_span(at)}, start={"$lte": at, "$gte": at - SPAN})
        # The first bucket ending at or after the point nearly always holds it: one document for the engine to
        # find, where a cursor over them all made it read each one the index range holds (a third of the rate).
        first = await self._buckets.find_one(holding, sort=[("end", ASCENDING)])
        if first is None:
            return None
        found = _holding(first, id_, slot, moved_from)
        if found is not None:
            return found
        cursor = self._buckets.find({**holding, "_id": {"$ne": first["_id"]}}).sort("end", ASCENDING).batch_size(2)
        async with cursor:
            async for doc in cursor:  # buckets overlapping in time: a late batch, a compaction under way
                found = _holding(doc, id_, slot, moved_from)
                if found is not None:
                    return found
        return None

    async def _metric(self, id_: str, found: Located) -> Metric:
        series = await self._series(found.series)
        return Metric(id_, series.name, series.tags, found.columns.values[found.position], from_millis(found.millis))

    async def _series(self, series_id: int) -> Series:
        series = self.registry.index.get(series_id)
        if series is None:  # created by another worker since this one last looked, or the index is still loading
            await self.registry.name([series_id])
            series = self.registry.index.get(series_id)
        if series is None:
            raise LookupError(f"bucket of series {series_id}, which the series collection does not hold")
        return series

    async def _rewrite(self, doc: Document, slots: list[Slot]) -> bool:
        """Store `slots` as the bucket's new content (delete it when empty) unless it changed since it was read."""
        guard = {"_id": doc["_id"], "rev": doc["rev"], "claimed": {"$exists": False}}
        if not slots:
            return (await self._buckets.delete_one(guard)).deleted_count == 1
        fresh = bucket_document(doc["series"], slots)
        del fresh["rev"]
        update: Document = {"$set": fresh, "$inc": {"rev": 1}}
        if "alias" not in fresh and "alias" in doc:
            update["$unset"] = {"alias": ""}
        return (await self._buckets.update_one(guard, update)).matched_count == 1

    async def _move(self, id_: str, found: Located, series: int, slot: Slot) -> bool:
        """Put the point in its new series or time, keeping its id; False when a concurrent edit came first.

        Inserted first, then recorded in `moved`, then removed from its old bucket: a failure half way leaves the
        point twice (readers count it once, by id), never nowhere. The `moved` row is swapped only if it still
        points where this edit found the point, so of two concurrent moves one wins and the other starts over.
        """
        seq = (await self._take_seqs(1))[0]
        new = bucket_document(series, [slot._replace(seq=seq)])
        await self._buckets.insert_one(new)
        target = {"series": series, "millis": slot.millis, "seq": seq}
        if found.moved_from is None:
            try:
                await self._moved.insert_one({"_id": id_, **target})
                swapped = True
            except DuplicateKeyError:
                swapped = False
        else:
            was = found.moved_from
            row = {"_id": id_, "series": was.series, "millis": was.millis, "seq": was.seq}
            swapped = (await self._moved.update_one(row, {"$set": target})).matched_count == 1
        if not swapped:
            await self._buckets.delete_one({"_id": new["_id"]})
            return False
        old = PointId(found.series, found.millis, found.seq)
        left: Located | None = found
        for attempt in range(_EDIT_ATTEMPTS):
            if left is None:
                return True  # removed meanwhile (a DELETE of the old copy): the new one stands
            if await self._rewrite(left.doc, without(left.columns, left.position)):
                return True
            await _back_off(attempt)
            left = await self._in_bucket(id_, old, None)
        raise StorageUnavailable("the moved metric's old copy kept changing under concurrent edits; retry")


def bucket_filter(query: MetricQuery, series: set[int] | None) -> Document:
    """Buckets overlapping the points a page may hold: the window, the cursor's side of it, the value bounds.

    From typed fields only: no user string becomes an operator.
    """
    first: datetime | None = query.start  # inclusive bounds on the points' timestamps
    last: datetime | None = None if query.end is None else query.end - timedelta(milliseconds=1)
    if query.cursor is not None:
        at = query.cursor.timestamp
        if query.order is SortOrder.DESC:
            last = at if last is None else min(last, at)
        else:
            first = at if first is None else max(first, at)
    found: Document = {}
    if series is not None:
        found["series"] = next(iter(series)) if len(series) == 1 else {"$in": sorted(series)}
    if first is not None:
        found["end"] = {"$gte": first}
        found["start"] = {"$gte": first - SPAN}
    if last is not None:
        found.setdefault("end", {})["$lte"] = _plus_span(last)
        found.setdefault("start", {})["$lte"] = last
    bounds = query.values.bounds()
    # A bucket's min and max hold for each of its points, so these skip buckets without a point in range.
    for op, field, bound in (("$gt", "max", bounds["gt"]), ("$gte", "max", bounds["gte"])):
        if bound is not None:
            found.setdefault(field, {})[op] = bound
    for op, field, bound in (("$lt", "min", bounds["lt"]), ("$lte", "min", bounds["lte"])):
        if bound is not None:
            found.setdefault(field, {})[op] = bound
    return found


def _holding(doc: Document, id_: str, slot: PointId, moved_from: PointId | None) -> Located | None:
    columns = decode_columns(doc)
    index = columns.index_of(slot.millis, slot.seq)
    if index is None or columns.point_id(slot.series, index) != id_:
        return None
    return Located(doc, columns, index, moved_from)


def overlap_filter(found: Document, last_end: datetime, edge: int) -> Document:
    """sort=asc: of the buckets `found` selects, those not read yet (ending at or after the last read; one read
    again adds nothing) that start at or before `edge`, so may hold a point of the page."""
    at = from_millis(edge)
    end = dict(found.get("end", {}))
    end["$gte"] = max(end.get("$gte", last_end), last_end)
    end["$lte"] = min(end.get("$lte", _plus_span(at)), _plus_span(at))
    start = dict(found.get("start", {}))
    start["$lte"] = min(start.get("$lte", at), at)
    return {**found, "end": end, "start": start}


def _plus_span(moment: datetime) -> datetime:
    return from_millis(min(to_millis(moment) + MAX_SPAN_MS, _LAST_MILLIS))


async def _back_off(attempt: int) -> None:
    """Randomised, so edits from several workers that met once do not meet again at every retry."""
    await asyncio.sleep(_EDIT_BACKOFF_SECONDS * random.uniform(1, 2**attempt))
