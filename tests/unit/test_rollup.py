"""The fallback computation: nearest-rank percentiles, local wall-clock bins, tag groups and ranking."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from telemetry_server.models.aggregate_rows import Point, Row
from telemetry_server.models.aggregation import AggregateFn, AggregateQuery, Bucket, BucketUnit
from telemetry_server.services.rollup import bucket_start, nearest_rank, rollup

NOW = datetime(2026, 11, 27, 15, 30, 12, 345000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("percentile", "values", "expected"),
    [(50, [1.0], 1.0), (50, [1.0, 2.0], 1.0), (50, [1.0, 2.0, 3.0], 2.0), (90, list(map(float, range(1, 11))), 9.0),
     (95, list(map(float, range(1, 21))), 19.0), (99, list(map(float, range(1, 101))), 99.0),
     (99, list(map(float, range(1, 102))), 100.0)],
)  # fmt: skip
def test_nearest_rank(percentile: int, values: list[float], expected: float) -> None:
    assert nearest_rank(values, percentile) == expected


def test_buckets_follow_the_local_wall_clock() -> None:
    at = datetime(2026, 11, 27, 15, 44, 59, tzinfo=UTC)
    assert bucket_start(at, Bucket(15, BucketUnit.MINUTE), UTC) == datetime(2026, 11, 27, 15, 30, tzinfo=UTC)
    kolkata = bucket_start(at, Bucket(1, BucketUnit.HOUR), ZoneInfo("Asia/Kolkata"))
    assert kolkata == datetime(2026, 11, 27, 15, 30, tzinfo=UTC)
    paris_day = bucket_start(at, Bucket(1, BucketUnit.DAY), ZoneInfo("Europe/Paris"))
    assert paris_day == datetime(2026, 11, 26, 23, 0, tzinfo=UTC)


def test_rollup_groups_by_tag_value_and_ranks() -> None:
    points = [
        Point(NOW, 1.0, "a", ("host:x",)),
        Point(NOW, 5.0, "a", ("host:y",)),
        Point(NOW, 3.0, "a", ("host:x", "host:z")),
        Point(NOW, 9.0, "a", ()),
    ]
    query = AggregateQuery(fn=AggregateFn.MAX, group_by="host", top=2)
    assert rollup(points, query) == [Row(5.0, 1, None, "y"), Row(3.0, 2, None, "x")]
    counted = rollup(points, AggregateQuery(fn=AggregateFn.COUNT))
    assert counted == [Row(4, 4)]
