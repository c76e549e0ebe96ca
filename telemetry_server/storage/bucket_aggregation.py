"""BucketAggregationStore: aggregates over bucket summaries, decoding only the buckets a summary cannot answer.

An aggregate is two reads and one fold (models/aggregate_fold.py):
1. the filter becomes series ids (the series index, after `refresh`), then the summaries of the buckets that
   overlap the window are read without their columns;
2. a summary wholly inside the window and one time bin, with every value past the value filter, enters the
   fold as it is; the columns of the others (the window's edges; every bucket for a percentile) are read
   by `_id` and their points enter one by one.

The seam for other sources of summaries (the rollups, `rollups_1m`/`rollups_1h`, shaped as `Summary`): every
summary enters the fold through `add_summaries`, which checks each against the window and the bins, and the
buckets are folded by `_fold_buckets` for a part of the window (its own `AggregatePlan`, which clips decoded
points to that part). A rollup source reads the units of the whole rollup intervals inside the window (each
inside one bin of the query), adds them, and folds the buckets of the window's two remaining ends.

Compaction (docs/storage-design.md, "As built") may show a merged bucket beside its sources: a bucket named
in a `replaces` seen is skipped, and a merged bucket that overlaps another bucket of its series (a source its
compactor has not deleted yet) has both decoded, its points counted once by (series, ts, seq). A bucket that
vanishes between the two reads (compacted, emptied) restarts the aggregate.
"""

from __future__ import annotations

import itertools
import logging
import time
from array import array
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import AsyncGenerator, Callable, Collection, Iterable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from bson.codec_options import DatetimeConversion
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from telemetry_server.errors import QueryTimedOut, QueryTooLarge, StorageUnavailable
from telemetry_server.models.aggregate_fold import AggregateFold, AggregatePlan, Group, group_keys
from telemetry_server.models.aggregate_rows import Row
from telemetry_server.models.aggregation import AggregateQuery
from telemetry_server.models.retention import RollupSize, retention_cutoff
from telemetry_server.models.timestamps import EARLIEST, from_millis, to_millis, utc_now
from telemetry_server.storage.bucket_columns import Columns, Summary, decode_columns
from telemetry_server.storage.mongo import Document, unavailable_when_unreachable
from telemetry_server.storage.mongo_rollups import rollup_summaries
from telemetry_server.storage.mongo_series import SeriesRegistry

log = logging.getLogger("telemetry_server.aggregation")

# Percentiles are exact, so they hold every value of the window: 8 bytes each, and sorting a group briefly
# costs ~32 bytes per value more (Python floats). A million values is ~40 MB at the peak.
MAX_PERCENTILE_VALUES = 1_000_000
_ATTEMPTS = 3  # reads restarted because a bucket vanished between them, before the client is told to retry
_HEAD_FIELDS = {"series": 1, "start": 1, "end": 1, "count": 1, "sum": 1, "min": 1, "max": 1, "replaces": 1}
_COLUMN_FIELDS = {"series": 1, "ts": 1, "v": 1, "seq": 1}
# The contract's indexes (docs/storage-design.md, "As built"). PERF: with a name filter, hinting {series, end}
# halved an aggregate on the fast engine (avg of one name over 6 h: 37 ms median hinted, 66 ms not; p95 of one name
# today: 45 vs 82; bench.bucket_aggregate's data, 360k points, 50 series, machine load ~12 on 2 cores). Without a
# filter, {end} is what the planner picks anyway (125 vs 126 ms for "top 5 events today"); with a `start` index
# (since dropped) it picked that one, which every bucket before the window's end matches, and took twice as long.
_END = [("end", DESCENDING)]
_SERIES_END = [("series", ASCENDING), ("end", DESCENDING)]
_BAD_VALUE = 2  # what an engine answers for a hint naming no index
# One reply holds every summary of an ordinary window, so a compaction finishing in the middle of the read
# cannot hide both a merged bucket and its sources (each summary is ~150 bytes of BSON).
_HEAD_BATCH = 50_000


class _BucketVanished(Exception):
    """A bucket whose summary was read is gone when its columns are fetched: read again."""


class BucketHead(NamedTuple):
    """A bucket as read without its columns (a NamedTuple: built for every bucket of a window, and cheaper)."""

    id: Any
    summary: Summary
    replaces: frozenset[Any] = frozenset()


@dataclass(slots=True)
class BucketSplit:
    """The buckets of a window: summaries to take whole, and buckets to decode (some to be deduplicated)."""

    whole: list[BucketHead]
    decode: list[Any]
    overlapping: set[Any]  # decoded buckets whose points are counted once by (series, ts, seq)


def to_head(doc: Document) -> BucketHead:
    """A bucket's summary; the store reads dates as DatetimeMS, so they are milliseconds already."""
    summary = Summary(
        doc["series"], int(doc["start"]), int(doc["end"]), doc["count"], doc["sum"], doc["min"], doc["max"]
    )
    replaces = doc.get("replaces")
    return BucketHead(doc["_id"], summary, frozenset(replaces)) if replaces else BucketHead(doc["_id"], summary)


def split_buckets(heads: Sequence[BucketHead], plan: AggregatePlan) -> BucketSplit:
    """Which buckets enter whole and which are decoded; a bucket a merged one replaces is left out."""
    live, overlapping = live_buckets(heads, lambda head: plan.overlaps(head.summary.start_ms, head.summary.end_ms))
    split = BucketSplit([], [], overlapping)
    for head in live:
        unit = head.summary
        if head.id not in overlapping and plan.whole(unit.start_ms, unit.end_ms, unit.min, unit.max):
            split.whole.append(head)
        else:
            split.decode.append(head.id)
    return split


def live_buckets(
    heads: Sequence[BucketHead], wanted: Callable[[BucketHead], bool]
) -> tuple[list[BucketHead], set[Any]]:
    """The wanted buckets no merged one replaces, and those of them that may share points (to be deduplicated)."""
    replaced = set().union(*(head.replaces for head in heads))
    live = [head for head in heads if head.id not in replaced and wanted(head)]
    overlapping: set[Any] = set()
    if replaced:  # only a merged bucket may share points with another
        by_series: dict[int, list[BucketHead]] = defaultdict(list)
        for head in live:
            by_series[head.summary.series].append(head)
        overlapping = set().union(*(_overlapping_merges(series_heads) for series_heads in by_series.values()))
    return live, overlapping


def _overlapping_merges(heads: list[BucketHead]) -> set[Any]:
    """Buckets of one series whose spans overlap where one of the two is a merged bucket: they may share
    points (a source whose compactor stopped before deleting it). Buckets of plain writes never do."""
    ordered = sorted(heads, key=lambda head: head.summary.start_ms)
    found: set[Any] = set()
    for position, head in enumerate(ordered):
        for later in itertools.islice(ordered, position + 1, None):
            if later.summary.start_ms > head.summary.end_ms:
                break
            if head.replaces or later.replaces:
                found |= {head.id, later.id}
    return found


def add_summaries(fold: AggregateFold, groups: Callable[[int], list[Group]], units: Iterable[Summary]) -> None:
    """Where summaries enter the fold: the buckets' today, and any other source of `Summary` units (rollups)."""
    for unit in units:
        fold.add_summary(groups(unit.series), unit.start_ms, unit.end_ms, unit.count, unit.sum, unit.min, unit.max)


def bucket_filter(series: set[int] | None, plan: AggregatePlan) -> Document:
    """Buckets that may hold points of the window; with a value filter, only those whose values can pass."""
    match: Document = {}
    if series is not None:
        match["series"] = {"$in": sorted(series)}
    if plan.low is not None:
        match["end"] = {"$gte": from_millis(plan.low)}
    if plan.high is not None:
        match["start"] = {"$lt": from_millis(plan.high)}
    values = plan.query.values
    above = {op: bound for op, bound in (("$gt", values.gt), ("$gte", values.gte)) if bound is not None}
    below = {op: bound for op, bound in (("$lt", values.lt), ("$lte", values.lte)) if bound is not None}
    if above:
        match["max"] = above
    if below:
        match["min"] = below
    return match


class BucketAggregationStore:
    """Reads the `buckets` collection through the worker's client, which the metric store owns and closes."""

    def __init__(
        self,
        database: AsyncDatabase[Document],
        registry: SeriesRegistry,
        max_values: int = MAX_PERCENTILE_VALUES,
        retention: timedelta | None = None,
        rollups: tuple[RollupSize, ...] = (),
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        # PERF: dates as DatetimeMS (an int) instead of datetimes: decoding a summary took 12 µs instead of 18, and
        # its two dates need no conversion to milliseconds (5 µs each), on a loaded machine.
        millis = database.codec_options.with_options(datetime_conversion=DatetimeConversion.DATETIME_MS)
        self._buckets = database["buckets"].with_options(codec_options=millis)
        self._database = database
        self._registry = registry
        self._max_values = max_values
        self._retention = retention
        # The finest rollups answer most windows whole (a window's edges cut fewer of their intervals).
        self._rollup = min(rollups, key=lambda size: size.millis) if rollups else None
        self._clock = clock

    async def aggregate(self, query: AggregateQuery, max_rows: int, time_limit: float | None = None) -> list[Row]:
        """Ranked rows; without `top`, at most `max_rows + 1` (one more than allowed says there are too many)."""
        deadline = None if time_limit is None else time.monotonic() + time_limit
        for _ in range(_ATTEMPTS):
            left = None if deadline is None else deadline - time.monotonic()
            try:
                async with unavailable_when_unreachable("aggregation", left):
                    fold = await self._fold(query, max_rows, deadline)
            except _BucketVanished:
                continue
            rows = fold.rows()
            return rows if query.top is not None else rows[: max_rows + 1]
        raise StorageUnavailable("the buckets of this window kept changing during the aggregate (compaction)")

    async def _fold(self, query: AggregateQuery, max_rows: int, deadline: float | None) -> AggregateFold:
        fold = AggregateFold(query)
        series = await self._series(query)
        if series is not None and not series:
            return fold
        part = fold.plan
        cutoff = retention_cutoff(self._clock(), self._retention)
        if cutoff is not None and (query.start is None or query.start < cutoff):
            # Expired time: answered from rollups, whole intervals inside the window and one bin (or not at all);
            # the buckets answer from the cutoff on, as if the sweep had already run.
            if self._rollup is not None and query.fn.percentile is None:
                await self._fold_rollups(fold, query, series, min(cutoff, query.end or cutoff), self._rollup)
            if query.end is not None and query.end <= cutoff:
                return fold
            part = AggregatePlan(replace(query, start=cutoff))
        await self._fold_buckets(fold, part, series, max_rows, deadline)
        return fold

    async def _fold_rollups(
        self, fold: AggregateFold, query: AggregateQuery, series: set[int] | None, end: datetime, size: RollupSize
    ) -> None:
        units = await rollup_summaries(self._database, series, query.start or EARLIEST, end, size)
        whole = [unit for unit in units if fold.plan.whole(unit.start_ms, unit.end_ms, unit.min, unit.max)]
        groups = await self._groups_of(query, {unit.series for unit in whole})
        add_summaries(fold, groups, whole)

    async def _fold_buckets(
        self, fold: AggregateFold, part: AggregatePlan, series: set[int] | None, max_rows: int, deadline: float | None
    ) -> None:
        """The buckets of `part` of the window: summaries where they answer, decoded points elsewhere."""
        query = fold.plan.query
        hint = _SERIES_END if series is not None else _END if part.low is not None else None
        heads = [to_head(doc) for doc in await self._heads(bucket_filter(series, part), hint)]
        split = split_buckets(heads, part)
        groups = await self._groups_of(query, {head.summary.series for head in heads})
        add_summaries(fold, groups, (head.summary for head in split.whole))
        if not split.decode or (query.top is None and len(fold) > max_rows):
            return
        async with aclosing(self._decoded(split.decode, split.overlapping)) as decoded:
            async for series_id, columns in decoded:
                fold.add_columns(groups(series_id), columns.millis, columns.values, part)
                _check_progress(fold, deadline, self._max_values)
                if query.top is None and len(fold) > max_rows:
                    return

    async def series_points(
        self, series: Collection[int], start_ms: int, end_ms: int, time_limit: float | None = None
    ) -> dict[int, list[Columns]]:
        """The points of `series` in [start_ms, end_ms] as columns of their buckets (unordered: the caller merges
        them), each point once (a merged bucket and a source of it still there share points). Expired points are
        left out. For reads of raw points (PromQL's selectors)."""
        cutoff = retention_cutoff(self._clock(), self._retention)
        if cutoff is not None:
            start_ms = max(start_ms, to_millis(cutoff))
        if not series or start_ms > end_ms:
            return {}
        match = {
            "series": {"$in": sorted(series)},
            "end": {"$gte": from_millis(start_ms)},
            "start": {"$lte": from_millis(end_ms)},
        }
        for _ in range(_ATTEMPTS):
            found: dict[int, list[Columns]] = defaultdict(list)
            try:
                async with unavailable_when_unreachable("read of points", time_limit):
                    heads = [to_head(doc) for doc in await self._heads(match, _SERIES_END)]
                    live, overlapping = live_buckets(heads, lambda head: True)
                    if not live:
                        return {}
                    async with aclosing(self._decoded([head.id for head in live], overlapping)) as decoded:
                        async for series_id, columns in decoded:
                            found[series_id].append(_clipped(columns, start_ms, end_ms))
            except _BucketVanished:
                continue
            return found
        raise StorageUnavailable("the buckets of this window kept changing during the read (compaction)")

    async def _decoded(self, ids: list[Any], overlapping: set[Any]) -> AsyncGenerator[tuple[int, Columns]]:
        """The columns of buckets `ids`, those in `overlapping` less the points already given (by ts, seq)."""
        seen: dict[int, set[tuple[int, int]]] = defaultdict(set)
        decoded = 0
        async for doc in self._buckets.find({"_id": {"$in": ids}}, _COLUMN_FIELDS):
            decoded += 1
            columns = decode_columns(doc)
            if doc["_id"] in overlapping:
                columns = _unseen(columns, seen[doc["series"]])
            yield doc["series"], columns
        if decoded < len(ids):
            raise _BucketVanished

    async def _series(self, query: AggregateQuery) -> set[int] | None:
        """The series the filter selects (None: every series), as of every write acknowledged before now."""
        if query.name is None and query.name_prefix is None and not query.tags:
            return None  # no filter to resolve (groups, when asked for, are looked up in `_groups_of`)
        await self._registry.refresh()
        return self._registry.index.match(query.name, query.name_prefix, query.tags)

    async def _heads(self, match: Document, hint: list[tuple[str, int]] | None) -> list[Document]:
        if hint is not None:
            try:
                return [doc async for doc in self._buckets.find(match, _HEAD_FIELDS, batch_size=_HEAD_BATCH).hint(hint)]
            except OperationFailure as exc:
                if exc.code != _BAD_VALUE or "hint" not in str(exc):
                    raise
                # The indexes are ensured in the background at start: until they exist, the engine chooses.
                log.info("buckets read without the index hint (%s)", exc)
        return [doc async for doc in self._buckets.find(match, _HEAD_FIELDS, batch_size=_HEAD_BATCH)]

    async def _groups_of(self, query: AggregateQuery, series: set[int]) -> _GroupsOf:
        """The groups of each series' points, from the series index (never from the points)."""
        index = self._registry.index
        if query.group_by is not None and any(one not in index for one in series):
            await self._registry.refresh()  # series created since the index was last brought up to date
        return _GroupsOf(self._registry, query.group_by)

    async def metric_names(self) -> list[str]:
        await self._registry.refresh()
        return self._registry.index.names()


class _GroupsOf:
    """Series id → the groups its points count in, remembered for the query."""

    def __init__(self, registry: SeriesRegistry, group_by: str | None) -> None:
        self._index = registry.index
        self._group_by = group_by
        self._known: dict[int, list[Group]] = {}

    def __call__(self, series: int) -> list[Group]:
        if self._group_by is None:
            return [None]
        groups = self._known.get(series)
        if groups is None:
            found = self._index.get(series)
            groups = [] if found is None else group_keys(found.name, found.tags, self._group_by)
            self._known[series] = groups
        return groups


def _clipped(columns: Columns, first_ms: int, last_ms: int) -> Columns:
    low, high = bisect_left(columns.millis, first_ms), bisect_right(columns.millis, last_ms)
    if low == 0 and high == len(columns):
        return columns
    return Columns(columns.millis[low:high], columns.values[low:high], columns.seqs[low:high])


def _unseen(columns: Columns, seen: set[tuple[int, int]]) -> Columns:
    """The points of `columns` not in `seen` (by timestamp and seq), which they are added to."""
    keep = [i for i, point in enumerate(zip(columns.millis, columns.seqs, strict=True)) if point not in seen]
    seen.update(zip(columns.millis, columns.seqs, strict=True))
    return Columns(
        array("q", (columns.millis[i] for i in keep)),
        array("d", (columns.values[i] for i in keep)),
        array("Q", (columns.seqs[i] for i in keep)),
    )


def _check_progress(fold: AggregateFold, deadline: float | None, max_values: int) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise QueryTimedOut("the aggregation ran past its time limit")
    if fold.kept > max_values:
        raise QueryTooLarge(
            f"a percentile reads every value in its window, and this one holds more than {max_values}: "
            "narrow the time window, or filter by name or tag"
        )
