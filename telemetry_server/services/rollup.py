"""Aggregation computed in Python from single points: the query executor's fallback path.

Percentiles are exact, by the nearest-rank method: the p-th percentile of n sorted values is the value at
1-based rank ceil(p/100 * n). It is always one of the values seen, and it is what SecantusDB's
`$percentile` returns; MongoDB's `$percentile` (method "approximate") may differ slightly on large groups.
The binning, grouping and ranking are models/aggregate_fold.py's, which the bucket store folds with too.
"""

from __future__ import annotations

from collections.abc import Iterable

from telemetry_server.models.aggregate_fold import AggregateFold, bucket_start, group_keys, nearest_rank
from telemetry_server.models.aggregate_rows import Point, Row
from telemetry_server.models.aggregation import AggregateQuery

__all__ = ["bucket_start", "nearest_rank", "rollup"]


def rollup(points: Iterable[Point], query: AggregateQuery) -> list[Row]:
    """Group, bucket, aggregate and rank `points` one by one: what the bucket store computes in bulk."""
    fold = AggregateFold(query)
    zone = query.zone
    for point in points:
        start = bucket_start(point.timestamp, query.bucket, zone) if query.bucket else None
        fold.add_values(group_keys(point.name, point.tags, query.group_by), start, (point.value,))
    return fold.rows()
