"""MongoRollups: count, sum, min and max of expired points, per series and aligned interval, kept past RETENTION.

```
rollups_1m / rollups_1h  {_id, series: int, start: date, count, sum, min, max, pending: [token]}
                         unique {series: 1, start: 1}
```

The sweeper adds the points it is about to drop, then drops them, then settles. A crash in between must not
count a point twice when the sweep is finished, so each addition carries a token naming the bucket and its
revision: an interval that already holds the token is not added to again (its upsert finds no document and
its insert hits the unique index). Settling pulls the token once the points are gone from their bucket.

Exactness: a rollup answers count, sum, min, max (and so avg) over whole intervals only; percentiles need
every value, which only unexpired buckets hold.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import NamedTuple

from pymongo import ASCENDING, IndexModel, UpdateMany, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from telemetry_server.models.retention import RollupSize, interval_start
from telemetry_server.storage.bucket_columns import Slot, Summary, from_millis, to_millis
from telemetry_server.storage.mongo import Document, unavailable_when_unreachable

_DUPLICATE_KEY = 11000
ROLLUP_INDEXES = [IndexModel([("series", ASCENDING), ("start", ASCENDING)], name="series_start", unique=True)]


class Expired(NamedTuple):
    """Points of one bucket about to be dropped, and the token that adds them once: (bucket _id, rev)."""

    series: int
    slots: Sequence[Slot]
    token: str


def summarize(series: int, slots: Iterable[Slot], size: RollupSize) -> list[Summary]:
    """The points of one series folded into one Summary per `size` interval, in time order."""
    by_start: dict[int, list[float]] = {}
    for slot in slots:
        by_start.setdefault(interval_start(slot.millis, size), []).append(slot.value)
    return [
        Summary(series, start, start + size.millis - 1, len(values), sum(values), min(values), max(values))
        for start, values in sorted(by_start.items())
    ]


class MongoRollups:
    def __init__(self, database: AsyncDatabase[Document], sizes: Sequence[RollupSize]) -> None:
        self._database = database
        self.sizes = tuple(sizes)

    async def ensure_indexes(self) -> None:
        async with unavailable_when_unreachable("creating rollup indexes"):
            for size in self.sizes:
                await self._database[size.collection].create_indexes(ROLLUP_INDEXES)

    async def add(self, expired: Sequence[Expired]) -> None:
        """Add the points to every rollup size, once per token however often this is called."""
        for size in self.sizes:
            updates = [
                UpdateOne(
                    {"series": one.series, "start": from_millis(summary.start_ms), "pending": {"$ne": one.token}},
                    {
                        "$inc": {"count": summary.count, "sum": summary.sum},
                        "$min": {"min": summary.min},
                        "$max": {"max": summary.max},
                        "$push": {"pending": one.token},
                    },
                    upsert=True,
                )
                for one in expired
                for summary in summarize(one.series, one.slots, size)
            ]
            if not updates:
                continue
            async with unavailable_when_unreachable("rollup of expired points"):
                try:
                    await self._database[size.collection].bulk_write(updates, ordered=False)
                except BulkWriteError as exc:
                    # A duplicate key is an interval that already holds the token: added before a crash.
                    errors = (exc.details or {}).get("writeErrors", [])
                    if any(error.get("code") != _DUPLICATE_KEY for error in errors):
                        raise

    async def settle(self, expired: Sequence[Expired]) -> None:
        """Forget the tokens once their points are gone from their buckets (they cannot be added again)."""
        for size in self.sizes:
            updates = [
                UpdateMany(
                    {"series": one.series, "start": {"$in": [from_millis(start) for start in starts]}},
                    {"$pull": {"pending": one.token}},
                )
                for one in expired
                if (starts := sorted({interval_start(slot.millis, size) for slot in one.slots}))
            ]
            if updates:
                async with unavailable_when_unreachable("rollup settling"):
                    await self._database[size.collection].bulk_write(updates, ordered=False)

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
