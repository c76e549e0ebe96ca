"""Aggregation computed in Python: the query executor's fallback path when the engine lacks an operator.

Percentiles are exact, by the nearest-rank method: the p-th percentile of n sorted values is the value at
1-based rank ceil(p/100 * n). It is always one of the values seen, and it is what SecantusDB's
`$percentile` returns; MongoDB's `$percentile` (method "approximate") may differ slightly on large groups.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo

from telemetry_server.models.aggregate_rows import Point, Row, rank_rows
from telemetry_server.models.aggregation import AggregateFn, AggregateQuery, Bucket, BucketUnit


def nearest_rank(ordered: list[float], percentile: int) -> float:
    """The value at 1-based rank ceil(percentile * n / 100) of the sorted, non-empty `ordered`."""
    rank = max(1, -(-percentile * len(ordered) // 100))  # integer ceiling: no float rounding at the edge
    return ordered[rank - 1]


def bucket_start(moment: datetime, bucket: Bucket, zone: tzinfo) -> datetime:
    """The start of the bin holding `moment`, on the local wall clock of `zone` (as `$dateTrunc` does)."""
    local = moment.astimezone(zone)
    if bucket.unit is BucketUnit.MINUTE:
        local = local.replace(minute=local.minute // bucket.size * bucket.size, second=0, microsecond=0)
    elif bucket.unit is BucketUnit.HOUR:
        local = local.replace(hour=local.hour // bucket.size * bucket.size, minute=0, second=0, microsecond=0)
    else:
        local = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return local.astimezone(UTC)


def group_keys(point: Point, group_by: str | None) -> list[str | None]:
    """The groups a point counts in: its name, each value of the tag key (a point may have several), or one."""
    if group_by is None:
        return [None]
    if group_by == "name":
        return [point.name]
    prefix = f"{group_by}:"
    return [tag[len(prefix) :] for tag in point.tags if tag.startswith(prefix)]


@dataclass(slots=True)
class _Accumulator:
    count: int = 0
    total: float = 0.0
    low: float = float("inf")
    high: float = float("-inf")
    values: list[float] = field(default_factory=list)

    def add(self, value: float, keep: bool) -> None:
        self.count += 1
        self.total += value
        self.low = min(self.low, value)
        self.high = max(self.high, value)
        if keep:
            self.values.append(value)

    def result(self, fn: AggregateFn) -> float:
        percentile = fn.percentile
        if percentile is not None:
            return nearest_rank(sorted(self.values), percentile)
        results = {
            AggregateFn.COUNT: float(self.count),
            AggregateFn.SUM: self.total,
            AggregateFn.AVG: self.total / self.count,
            AggregateFn.MIN: self.low,
            AggregateFn.MAX: self.high,
        }
        return results[fn]


def rollup(points: Iterable[Point], query: AggregateQuery) -> list[Row]:
    """Group, bucket, aggregate and rank `points` exactly as the server pipeline does."""
    keep = query.fn.percentile is not None
    zone = query.zone
    groups: dict[tuple[datetime | None, str | None], _Accumulator] = {}
    for point in points:
        start = bucket_start(point.timestamp, query.bucket, zone) if query.bucket else None
        for key in group_keys(point, query.group_by):
            groups.setdefault((start, key), _Accumulator()).add(point.value, keep)
    rows = [Row(acc.result(query.fn), acc.count, start, key) for (start, key), acc in groups.items()]
    return rank_rows(rows, query)
