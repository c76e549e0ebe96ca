"""Aggregates computed point by point, the plain way: the reference the bucket store's answers are checked against.

Independent of models/aggregate_fold.py's accumulation: it keeps every value of every group. It shares only
the definitions of the answer: bins (`bucket_start`, the local wall clock of `tz`) and the rows' order
(`rank_rows`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from telemetry_server.models.aggregate_fold import bucket_start
from telemetry_server.models.aggregate_rows import Row, rank_rows
from telemetry_server.models.aggregation import AggregateFn, AggregateQuery


@dataclass(frozen=True, slots=True)
class Reading:
    timestamp: datetime
    value: float
    name: str = ""
    tags: tuple[str, ...] = ()


def selected(reading: Reading, query: AggregateQuery) -> bool:
    """Whether the query's filter, window and value bounds take the reading."""
    bounds, at, value = query.values, reading.timestamp, reading.value
    return (
        (query.name is None or reading.name == query.name)
        and (query.name_prefix is None or reading.name.startswith(query.name_prefix))
        and set(query.tags) <= set(reading.tags)
        and (query.start is None or at >= query.start)
        and (query.end is None or at < query.end)
        and (bounds.gt is None or value > bounds.gt)
        and (bounds.gte is None or value >= bounds.gte)
        and (bounds.lt is None or value < bounds.lt)
        and (bounds.lte is None or value <= bounds.lte)
    )


def brute_force(readings: Iterable[Reading], query: AggregateQuery) -> list[Row]:
    groups: dict[tuple[datetime | None, str | None], list[float]] = {}
    for reading in readings:
        if not selected(reading, query):
            continue
        start = bucket_start(reading.timestamp, query.bucket, query.zone) if query.bucket else None
        if query.group_by is None:
            keys: list[str | None] = [None]
        elif query.group_by == "name":
            keys = [reading.name]
        else:
            keys = [tag.split(":", 1)[1] for tag in reading.tags if tag.split(":", 1)[0] == query.group_by]
        for key in keys:
            groups.setdefault((start, key), []).append(reading.value)
    rows = [Row(_result(values, query.fn), len(values), start, key) for (start, key), values in groups.items()]
    return rank_rows(rows, query)


def _result(values: list[float], fn: AggregateFn) -> float:
    if fn.percentile is not None:
        ordered = sorted(values)
        return ordered[max(1, -(-fn.percentile * len(ordered) // 100)) - 1]
    total = 0.0
    for value in values:
        total += value
    plain = {
        AggregateFn.COUNT: float(len(values)),
        AggregateFn.SUM: total,
        AggregateFn.AVG: total / len(values),
        AggregateFn.MIN: min(values),
        AggregateFn.MAX: max(values),
    }
    return plain[fn]
