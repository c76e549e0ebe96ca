"""MongoRollups: count, sum, min and max of expired points, per series and aligned interval, kept past RETENTION.

```
rollups_1m / rollups_1h  {_id, series: int, start: date, count, sum, min, max, pending: [ObjectId]}
                         unique {series: 1, start: 1}
```

The sweeper adds the points it is about to drop, then drops them. A crash in between must not count a point
twice when recovery finishes the sweep, so each addition carries the sweep's claim marker (the ObjectId its
buckets are claimed with) in `pending`, and an interval that already holds it is not added to again. Recovery
redoes the addition with every bucket of that claim, so an interval holds either all of a sweep's points or
none. An interval is first inserted whole (with its creating sweep's marker, which stays: 12 bytes): inserts
cost the engine a thirtieth of upserts (`python -m bench.upkeep_probe`). One that exists already (the interval
the cutoff is in) is updated, and that sweep's marker is pulled again once its points are gone.

Exactness: a rollup answers count, sum, min, max (and so avg) over whole intervals only; percentiles need
every value, which only unexpired buckets hold.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import NamedTuple

from bson import ObjectId
from pymongo import ASCENDING, IndexModel, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from telemetry_server.models.retention import RollupSize, interval_start
from telemetry_server.models.timestamps import from_millis, to_millis
from telemetry_server.storage.bucket_columns import Slot, Summary
from telemetry_server.storage.mongo import Document, already_there, unavailable_when_unreachable

ROLLUP_INDEXES = [IndexModel([("series", ASCENDING), ("start", ASCENDING)], name="series_start", unique=True)]


class Expired(NamedTuple):
    """Points of one series about to be dropped (from one bucket)."""

    series: int
    slots: Sequence[Slot]


def summarize(expired: Iterable[Expired], size: RollupSize) -> list[Summary]:
    """The points folded into one Summary per series and `size` interval, in (series, time) order."""
    by_interval: dict[tuple[int, int], list[float]] = {}
    for one in expired:
        for slot in one.slots:
            by_interval.setdefault((one.series, interval_start(slot.millis, size)), []).append(slot.value)
    return [
        Summary(series, start, start + size.millis - 1, len(values), sum(values), min(values), max(values))
        for (series, start), values in sorted(by_interval.items())
    ]


Updated = dict[RollupSize, list[Summary]]


class MongoRollups:
    def __init__(self, database: AsyncDatabase[Document], sizes: Sequence[RollupSize]) -> None:
        self._database = database
        self.sizes = tuple(sizes)

    async def ensure_indexes(self) -> None:
        async with unavailable_when_unreachable("creating rollup indexes"):
            for size in self.sizes:
                await self._database[size.collection].create_indexes(ROLLUP_INDEXES)

    async def add(self, expired: Sequence[Expired], marker: ObjectId) -> Updated:
        """Add the points to every rollup size, once per marker however often this is called; the intervals
        that existed before (to `settle` once the points are dropped)."""
        updated: Updated = {}
        for size in self.sizes:
            summaries = summarize(expired, size)
            if not summaries:
                continue
            collection = self._database[size.collection]
            fresh = [
                {
                    "series": one.series,
                    "start": from_millis(one.start_ms),
                    "count": one.count,
                    "sum": one.sum,
                    "min": one.min,
                    "max": one.max,
                    "pending": [marker],
                }
                for one in summaries
            ]
            existing: list[Summary] = []
            async with unavailable_when_unreachable("rollup of expired points"):
                try:
                    await collection.insert_many(fresh, ordered=False)
                except BulkWriteError as exc:
                    found = already_there(exc)
                    if found is None:
                        raise
                    existing = [summaries[index] for index in found]
                if existing:
                    await collection.bulk_write(
                        [
                            UpdateOne(
                                {"series": one.series, "start": from_millis(one.start_ms), "pending": {"$ne": marker}},
                                {
                                    "$inc": {"count": one.count, "sum": one.sum},
                                    "$min": {"min": one.min},
                                    "$max": {"max": one.max},
                                    "$push": {"pending": marker},
                                },
                            )
                            for one in existing
                        ],
                        ordered=False,
                    )
            updated[size] = existing
        return updated

    async def settle(self, updated: Updated, marker: ObjectId) -> None:
        """Pull `marker` from the intervals it updated, once their points are gone from the buckets."""
        for size, summaries in updated.items():
            if summaries:
                async with unavailable_when_unreachable("rollup settling"):
                    await self._database[size.collection].bulk_write(
                        [
                            UpdateOne(
                                {"series": one.series, "start": from_millis(one.start_ms)},
                                {"$pull": {"pending": marker}},
                            )
                            for one in summaries
                        ],
                        ordered=False,
                    )

    async def expire(self, cutoff: datetime) -> int:
        """Delete the intervals that ended before `cutoff`; how many went."""
        deleted = 0
        for size in self.sizes:
            before = from_millis(to_millis(cutoff) - size.millis + 1)
            async with unavailable_when_unreachable("expiry of rollups"):
                result = await self._database[size.collection].delete_many({"start": {"$lt": before}})
            deleted += result.deleted_count
        return deleted


async def rollup_summaries(
    database: AsyncDatabase[Document],
    series_ids: Collection[int] | None,
    start: datetime,
    end: datetime,
    size: RollupSize,
) -> list[Summary]:
    """The rollups of `size` whose interval starts in [start, end), of these series (None: every series).

    Each Summary spans its whole interval, [start_ms, start_ms + size - 1]: a caller folds those inside its
    window (or group) and must not use one that straddles a window's edge. Rollups hold points dropped up to the
    last sweep: expired points the sweeper has not reached yet are in neither rollups nor answers.
    """
    query: Document = {"start": {"$gte": start, "$lt": end}}
    if series_ids is not None:
        query["series"] = {"$in": list(series_ids)}
    projection = {"_id": 0, "series": 1, "start": 1, "count": 1, "sum": 1, "min": 1, "max": 1}
    async with unavailable_when_unreachable("read of rollups"):
        docs = [doc async for doc in database[size.collection].find(query, projection)]
    summaries = []
    for doc in docs:
        start_ms = to_millis(doc["start"])
        summaries.append(
            Summary(
                doc["series"], start_ms, start_ms + size.millis - 1, doc["count"], doc["sum"], doc["min"], doc["max"]
            )
        )
    summaries.sort(key=lambda summary: (summary.start_ms, summary.series))
    return summaries
