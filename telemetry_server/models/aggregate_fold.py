"""The fold behind every aggregate: summaries and single values, binned and grouped, into ranked rows.

Storage feeds it two kinds of input. A *summary* is the count, sum, min and max of points that all lie inside
the query's window and inside one time bin (a bucket's, or a rollup's): it enters whole. *Values* are decoded
points of one bin, already clipped to the window. Percentiles are exact (nearest rank), so they take values
only: no summary can answer them. `AggregatePlan` says which summaries may enter whole and cuts decoded
columns into runs of one bin; `AggregateFold` accumulates and ranks. Pure: no I/O, synchronous.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from telemetry_server.models.aggregate_rows import Row, rank_rows
from telemetry_server.models.aggregation import AggregateFn, AggregateQuery, Bucket, BucketUnit
from telemetry_server.models.timestamps import EARLIEST, from_millis
from telemetry_server.models.value_range import ValueRange

Group = str | None
_MILLISECOND = timedelta(milliseconds=1)
_WEEK_MS = 7 * 24 * 3_600_000
_STEADY_MARGIN_MS = 2 * 24 * 3_600_000


def nearest_rank(ordered: Sequence[float], percentile: int) -> float:
    """The value at 1-based rank ceil(percentile * n / 100) of the sorted, non-empty `ordered`."""
    rank = max(1, -(-percentile * len(ordered) // 100))  # integer ceiling: no float rounding at the edge
    return ordered[rank - 1]


def bucket_start(moment: datetime, bucket: Bucket, zone: tzinfo) -> datetime:
    """The start of the bin holding `moment`, on the local wall clock of `zone` (as `$dateTrunc` does).

    Away from changes of the zone's UTC offset the local clock is a fixed shift of UTC, and the bins of
    consecutive moments never go back. Near one they may: a bin whose start falls in a DST gap or fold, as
    with Lord Howe Island's 30-minute change, can start after the next bin (AggregatePlan keeps clear of that).
    """
    local = moment.astimezone(zone)
    if bucket.unit is BucketUnit.MINUTE:
        local = local.replace(minute=local.minute // bucket.size * bucket.size, second=0, microsecond=0)
    elif bucket.unit is BucketUnit.HOUR:
        local = local.replace(hour=local.hour // bucket.size * bucket.size, minute=0, second=0, microsecond=0)
    else:
        local = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return local.astimezone(UTC)


def group_keys(name: str, tags: Sequence[str], group_by: str | None) -> list[Group]:
    """The groups a point counts in: its name, each value of the tag key (a point may have several), or one."""
    if group_by is None:
        return [None]
    if group_by == "name":
        return [name]
    prefix = f"{group_by}:"
    return [tag[len(prefix) :] for tag in tags if tag.startswith(prefix)]


def ceil_millis(moment: datetime) -> int:
    """The first whole millisecond since the epoch at or after `moment` (points are stored to the ms)."""
    return -(-(moment - EARLIEST) // _MILLISECOND)


def value_test(bounds: ValueRange) -> Callable[[float], bool]:
    """Whether a value passes the `value_*` bounds."""
    gt, gte, lt, lte = bounds.gt, bounds.gte, bounds.lt, bounds.lte

    def accepts(value: float) -> bool:
        return (
            (gt is None or value > gt)
            and (gte is None or value >= gte)
            and (lt is None or value < lt)
            and (lte is None or value <= lte)
        )

    return accepts


class AggregatePlan:
    """A query's window in milliseconds, its bins, and which summaries may enter the fold whole."""

    def __init__(self, query: AggregateQuery) -> None:
        self.query = query
        self.low = None if query.start is None else ceil_millis(query.start)  # first ms inside
        self.high = None if query.end is None else ceil_millis(query.end)  # first ms past the end
        self.accepts = value_test(query.values) if query.values.bounded else None
        self._percentile = query.fn.percentile is not None  # no summary answers it
        self._bucket = query.bucket
        self._zone: ZoneInfo = query.zone

    def bin_of(self, millis: int) -> datetime | None:
        return None if self._bucket is None else bucket_start(from_millis(millis), self._bucket, self._zone)

    def overlaps(self, first_ms: int, last_ms: int) -> bool:
        """Whether points held from `first_ms` to `last_ms` (inclusive) may lie inside the window."""
        return (self.low is None or last_ms >= self.low) and (self.high is None or first_ms < self.high)

    def whole(self, first_ms: int, last_ms: int, low: float, high: float) -> bool:
        """Whether the summary of points from `first_ms` to `last_ms` (inclusive), with values from `low` to
        `high`, enters the fold as it is: inside the window and one bin, every value past the value filter."""
        if self._percentile:
            return False
        if (self.low is not None and first_ms < self.low) or (self.high is not None and last_ms >= self.high):
            return False
        if self.accepts is not None and not (self.accepts(low) and self.accepts(high)):
            return False  # the bounds make an interval: both ends inside it means every value is
        if self._bucket is None:
            return True
        return self._steady(first_ms, last_ms) and self.bin_of(first_ms) == self.bin_of(last_ms)

    def runs(self, millis: Sequence[int]) -> Iterator[tuple[datetime | None, int, int]]:
        """The positions of the sorted `millis` inside the window, as runs `(bin, from, to)` of one bin each
        (one bin may come in several runs, in any order)."""
        start = 0 if self.low is None else bisect_left(millis, self.low)
        stop = len(millis) if self.high is None else bisect_left(millis, self.high)
        bucket = self._bucket
        if bucket is None:
            if start < stop:
                yield None, start, stop
            return

        def bin_of(millis: int) -> datetime:
            return bucket_start(from_millis(millis), bucket, self._zone)

        # Away from offset changes bins never go back (bucket_start): the end of each is found by bisection,
        # a dozen bin computations per bin instead of one per point.
        steady = start < stop and self._steady(millis[start], millis[stop - 1])
        while start < stop:
            current = bin_of(millis[start])
            end = start + 1
            if steady:
                end = bisect_right(millis, current, start, stop, key=bin_of)
            else:
                while end < stop and bin_of(millis[end]) == current:
                    end += 1
            yield current, start, end
            start = end

    def _steady(self, first_ms: int, last_ms: int) -> bool:
        """Whether the zone's offset holds from two days before `first_ms` to two days after `last_ms`: there,
        bins (a day at most) start at the same offset as their points, and never go back in time.

        Two offset changes are months apart in every zone, so equal offsets at both ends of a span of a few
        days mean no change in between.
        """
        if self._zone.key == "UTC":
            return True
        if last_ms - first_ms > _WEEK_MS:
            return False
        before = from_millis(first_ms - _STEADY_MARGIN_MS).astimezone(self._zone).utcoffset()
        return before == from_millis(last_ms + _STEADY_MARGIN_MS).astimezone(self._zone).utcoffset()


@dataclass(slots=True)
class Accumulator:
    count: int = 0
    total: float = 0.0
    low: float = math.inf
    high: float = -math.inf
    kept: array[float] = field(default_factory=lambda: array("d"))

    def add_summary(self, count: int, total: float, low: float, high: float) -> None:
        self.count += count
        self.total += total
        self.low = min(self.low, low)
        self.high = max(self.high, high)

    def add_values(self, values: Sequence[float], keep: bool) -> None:
        self.add_summary(len(values), sum(values), min(values), max(values))
        if keep:
            self.kept.extend(values)

    def result(self, fn: AggregateFn) -> float:
        percentile = fn.percentile
        if percentile is not None:
            return nearest_rank(sorted(self.kept), percentile)
        results = {
            AggregateFn.COUNT: float(self.count),
            AggregateFn.SUM: self.total,
            AggregateFn.AVG: self.total / self.count,
            AggregateFn.MIN: self.low,
            AggregateFn.MAX: self.high,
        }
        return results[fn]


class AggregateFold:
    """Rows of one query, accumulated per (bin, group) from summaries, columns and values, in any order."""

    def __init__(self, query: AggregateQuery) -> None:
        self.plan = AggregatePlan(query)
        self._query = query
        self._keep = query.fn.percentile is not None
        self._groups: dict[tuple[datetime | None, Group], Accumulator] = {}
        self.kept = 0  # values held for percentiles: what the query costs in memory

    def __len__(self) -> int:
        """The rows so far."""
        return len(self._groups)

    def add_summary(
        self, groups: Sequence[Group], first_ms: int, last_ms: int, count: int, total: float, low: float, high: float
    ) -> None:
        """The summary of points from `first_ms` to `last_ms`, which `plan.whole` accepted."""
        if not self.plan.whole(first_ms, last_ms, low, high):
            raise ValueError("this summary does not lie in one bin of the window: decode its points instead")
        if count:
            bin_ = self.plan.bin_of(first_ms)
            for group in groups:
                self._accumulator(bin_, group).add_summary(count, total, low, high)

    def add_columns(
        self, groups: Sequence[Group], millis: Sequence[int], values: Sequence[float], part: AggregatePlan | None = None
    ) -> None:
        """Decoded points sorted by time: those inside the window (or the `part` of it, when the rest is summed
        from another source) and past the value filter enter."""
        plan = part or self.plan
        accepts = plan.accepts
        for bin_, start, stop in plan.runs(millis):
            run = values[start:stop]
            self.add_values(groups, bin_, run if accepts is None else [v for v in run if accepts(v)])

    def add_values(self, groups: Sequence[Group], bin_: datetime | None, values: Sequence[float]) -> None:
        """Values of one bin, already inside the window and past any value filter."""
        if values:
            for group in groups:
                self._accumulator(bin_, group).add_values(values, self._keep)
                if self._keep:
                    self.kept += len(values)

    def _accumulator(self, bin_: datetime | None, group: Group) -> Accumulator:
        accumulator = self._groups.get((bin_, group))
        if accumulator is None:
            accumulator = self._groups[(bin_, group)] = Accumulator()
        return accumulator

    def rows(self) -> list[Row]:
        """Ranked as every path ranks them (`rank_rows`)."""
        fn = self._query.fn
        rows = [Row(acc.result(fn), acc.count, bin_, group) for (bin_, group), acc in self._groups.items()]
        return rank_rows(rows, self._query)
