"""The aggregate fold: nearest-rank percentiles, local wall-clock bins (across DST too), tag groups, ranking,
and summaries taken whole beside decoded edges, against a point-by-point computation."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from telemetry_server.models.aggregate_fold import AggregateFold, AggregatePlan, bucket_start, group_keys, nearest_rank
from telemetry_server.models.aggregate_rows import Row
from telemetry_server.models.aggregation import BUCKET_SIZES, AggregateFn, AggregateQuery, Bucket, BucketUnit
from telemetry_server.models.metric_query import SortOrder
from telemetry_server.models.timestamps import EARLIEST, from_millis
from telemetry_server.models.value_range import ValueRange
from tests.brute_force import Reading, brute_force

T0 = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)  # Europe's spring change is at 01:00 UTC this day
MINUTE = 60_000
NOW = datetime(2026, 11, 27, 15, 30, 12, 345000, tzinfo=UTC)


def millis(moment: datetime) -> int:
    return (moment - EARLIEST) // timedelta(milliseconds=1)


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


def fold_readings(readings: list[Reading], query: AggregateQuery) -> list[Row]:
    fold = AggregateFold(query)
    for reading in readings:
        fold.add_columns(
            group_keys(reading.name, reading.tags, query.group_by), [millis(reading.timestamp)], [reading.value]
        )
    return fold.rows()


def test_groups_by_tag_value_and_ranks() -> None:
    readings = [
        Reading(NOW, 1.0, "a", ("host:x",)),
        Reading(NOW, 5.0, "a", ("host:y",)),
        Reading(NOW, 3.0, "a", ("host:x", "host:z")),
        Reading(NOW, 9.0, "a", ()),
    ]
    query = AggregateQuery(fn=AggregateFn.MAX, group_by="host", top=2)
    assert fold_readings(readings, query) == [Row(5.0, 1, None, "y"), Row(3.0, 2, None, "x")]
    counted = fold_readings(readings, AggregateQuery(fn=AggregateFn.COUNT))
    assert counted == [Row(4, 4)]


CHANGES = [  # (zone, an offset change there)
    ("Europe/Paris", datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),
    ("America/New_York", datetime(2026, 3, 8, 7, 0, tzinfo=UTC)),
    ("America/New_York", datetime(2026, 11, 1, 6, 0, tzinfo=UTC)),
    ("Australia/Lord_Howe", datetime(2026, 4, 4, 15, 0, tzinfo=UTC)),  # 30 minutes back
    ("Australia/Lord_Howe", datetime(2026, 10, 3, 15, 30, tzinfo=UTC)),
    ("Asia/Kathmandu", datetime(2026, 4, 4, 15, 0, tzinfo=UTC)),  # none: +05:45 all year
]
ALL_BUCKETS = [Bucket(size, BucketUnit(unit)) for unit, sizes in BUCKET_SIZES.items() for size in sizes]


@pytest.mark.parametrize(("zone", "change"), CHANGES)
def test_bins_never_go_back_away_from_offset_changes(zone: str, change: datetime) -> None:
    """What lets a summary whose first and last points share a bin enter whole, and runs be bisected."""
    local = ZoneInfo(zone)
    for bucket in ALL_BUCKETS:
        plan = AggregatePlan(AggregateQuery(bucket=bucket, tz=zone))
        previous: datetime | None = None
        for step in range(0, 8 * 24 * 60, 13):  # eight days around the change, every 13 minutes
            moment = change - timedelta(days=4) + timedelta(minutes=step)
            start = bucket_start(moment, bucket, local)
            if previous is not None and plan._steady(millis(moment) - 13 * MINUTE, millis(moment)):
                assert start >= previous, (bucket, moment)
            previous = start


@pytest.mark.parametrize(("zone", "change"), CHANGES)
def test_runs_cut_columns_into_bins_across_an_offset_change(zone: str, change: datetime) -> None:
    column = [millis(change) + step * 97_000 for step in range(-50, 50)]
    for bucket in ALL_BUCKETS:
        plan = AggregatePlan(AggregateQuery(bucket=bucket, tz=zone))
        runs = list(plan.runs(column))
        assert [n for bin_, start, stop in runs for n in range(start, stop)] == list(range(len(column)))
        for bin_, start, stop in runs:
            assert {bucket_start(from_millis(m), bucket, ZoneInfo(zone)) for m in column[start:stop]} == {bin_}
        if plan.whole(column[0], column[-1], 0.0, 0.0):  # near a change, summaries are not taken whole
            assert len({bucket_start(from_millis(m), bucket, ZoneInfo(zone)) for m in column}) == 1
    later = [m + 4 * 24 * 3_600_000 for m in column]  # days after it, the same points lie in one local day
    assert AggregatePlan(AggregateQuery(bucket=ALL_BUCKETS[-1], tz=zone)).whole(later[0], later[-1], 0.0, 0.0) == (
        len({bucket_start(from_millis(m), ALL_BUCKETS[-1], ZoneInfo(zone)) for m in later}) == 1
    )


def test_a_summary_enters_whole_only_inside_the_window_and_one_bin() -> None:
    quarters = Bucket(15, BucketUnit.MINUTE)
    query = AggregateQuery(fn=AggregateFn.SUM, start=T0, end=T0 + timedelta(hours=2), bucket=quarters)
    plan = AggregatePlan(query)
    at = millis(T0)
    assert plan.whole(at, at + 14 * MINUTE, 0.0, 1.0)
    assert not plan.whole(at - 1, at + MINUTE, 0.0, 1.0)  # starts before the window
    assert not plan.whole(at + 14 * MINUTE, at + 15 * MINUTE, 0.0, 1.0)  # spans two bins
    assert not plan.whole(at + 119 * MINUTE, at + 120 * MINUTE, 0.0, 1.0)  # its last point is at the (open) end
    assert plan.overlaps(at - MINUTE, at)
    assert not plan.overlaps(at - MINUTE, at - 1)
    assert not plan.overlaps(at + 120 * MINUTE, at + 121 * MINUTE)
    assert not AggregatePlan(AggregateQuery(fn=AggregateFn.P50)).whole(at, at, 0.0, 1.0)
    filtered = AggregatePlan(AggregateQuery(fn=AggregateFn.SUM, values=ValueRange(gt=1.0, lte=5.0)))
    assert filtered.whole(at, at, 1.5, 5.0)  # every value passes the filter
    assert not filtered.whole(at, at, 1.0, 5.0)
    assert not filtered.whole(at, at, 2.0, 5.5)


def test_a_window_with_microseconds_holds_the_milliseconds_at_or_after_it() -> None:
    plan = AggregatePlan(AggregateQuery(start=T0 + timedelta(microseconds=1500), end=T0 + timedelta(microseconds=2500)))
    at = millis(T0)
    assert list(plan.runs([at + 1, at + 2, at + 3])) == [(None, 1, 2)]


def test_runs_cut_decoded_columns_into_bins_as_single_points_are() -> None:
    query = AggregateQuery(start=T0, end=T0 + timedelta(hours=5), bucket=Bucket(1, BucketUnit.HOUR), tz="Europe/Paris")
    plan = AggregatePlan(query)
    column = sorted(millis(T0) - 30 * MINUTE + random.Random(1).randrange(6 * 60 * MINUTE) for _ in range(500))
    runs = list(plan.runs(column))
    inside = [m for m in column if millis(T0) <= m < millis(T0) + 300 * MINUTE]
    assert sum(stop - start for _, start, stop in runs) == len(inside)
    for bin_, start, stop in runs:
        hour, paris = Bucket(1, BucketUnit.HOUR), ZoneInfo("Europe/Paris")
        assert {bucket_start(from_millis(m), hour, paris) for m in column[start:stop]} == {bin_}
    assert [bin_ for bin_, _, _ in runs] == sorted({bin_ for bin_, _, _ in runs})


def test_a_percentile_takes_no_summary() -> None:
    fold = AggregateFold(AggregateQuery(fn=AggregateFn.P90))
    with pytest.raises(ValueError, match="decode its points"):
        fold.add_summary([None], 0, 10, 2, 3.0, 1.0, 2.0)  # a percentile needs every value
    fold.add_columns([None], [0, 5, 10], [3.0, 1.0, 2.0])
    assert fold.rows() == [Row(3.0, 3)]
    assert fold.kept == 3


def test_counts_are_whole_numbers_and_groups_without_points_give_no_row() -> None:
    fold = AggregateFold(AggregateQuery(fn=AggregateFn.COUNT, group_by="host"))
    fold.add_summary(["a", "b"], 0, 10, 4, 4.0, 1.0, 1.0)
    fold.add_summary(["c"], 0, 10, 0, 0.0, 0.0, 0.0)
    fold.add_columns(["a"], [11], [1.0])
    assert fold.rows() == [Row(5, 5, None, "a"), Row(4, 4, None, "b")]


SERIES = {
    1: ("cpu", ("host:a", "env:prod")),
    2: ("cpu", ("host:b",)),
    3: ("disk", ("host:a", "host:c")),
    4: ("disk", ()),
}


def random_buckets(rng: random.Random, around: datetime = T0) -> dict[int, list[list[tuple[int, float]]]]:
    """Per series, buckets of (millis, value) sorted by time: spans of a few seconds to an hour, as sealed."""
    out: dict[int, list[list[tuple[int, float]]]] = {}
    for series in SERIES:
        at = millis(around) - rng.randrange(120) * MINUTE
        buckets = []
        for _ in range(rng.randrange(1, 12)):
            size = rng.randrange(1, 40)
            gap = rng.choice([1_000, 20_000, 90_000])
            points = [(at + i * gap + rng.randrange(gap), float(rng.randrange(-50, 100))) for i in range(size)]
            buckets.append(sorted(points))
            at = points[-1][0] + rng.randrange(1, 30 * MINUTE)
        out[series] = buckets
    return out


def fold_buckets(query: AggregateQuery, buckets: dict[int, list[list[tuple[int, float]]]]) -> tuple[list[Row], int]:
    """What the bucket store does without I/O: summaries whole where the plan allows, the rest decoded."""
    fold = AggregateFold(query)
    summaries = 0
    for series, series_buckets in buckets.items():
        name, tags = SERIES[series]
        groups = group_keys(name, tags, query.group_by)
        for points in series_buckets:
            ms, values = [p[0] for p in points], [p[1] for p in points]
            if not fold.plan.overlaps(ms[0], ms[-1]):
                continue
            if fold.plan.whole(ms[0], ms[-1], min(values), max(values)):
                fold.add_summary(groups, ms[0], ms[-1], len(values), sum(values), min(values), max(values))
                summaries += 1
            else:
                fold.add_columns(groups, ms, values)
    return fold.rows(), summaries


def brute(query: AggregateQuery, buckets: dict[int, list[list[tuple[int, float]]]]) -> list[Row]:
    readings = [
        Reading(from_millis(at), value, *SERIES[series])
        for series, series_buckets in buckets.items()
        for bucket in series_buckets
        for at, value in bucket
    ]
    return brute_force(readings, query)


def approx_rows(rows: list[Row]) -> list[object]:
    return [(row.bucket, row.group, pytest.approx(row.value), row.count) for row in rows]


@pytest.mark.parametrize("seed", range(60))
def test_summaries_and_edges_fold_to_what_single_points_give(seed: int) -> None:
    rng = random.Random(seed)
    zone, change = rng.choice([*CHANGES, ("UTC", T0)])
    buckets = random_buckets(rng, change)
    start = change + timedelta(seconds=rng.randrange(-3600, 3600), milliseconds=rng.randrange(1000))
    group_by = rng.choice([None, None, "name", "host", "env"])
    bucket = rng.choice([None, None, *(Bucket(size, BucketUnit.MINUTE) for size in (5, 12)), *ALL_BUCKETS[-3:]])
    query = AggregateQuery(
        fn=rng.choice(list(AggregateFn)),
        start=rng.choice([None, start]),
        end=rng.choice([None, start + timedelta(minutes=rng.randrange(1, 300))]),
        values=rng.choice([ValueRange(), ValueRange(), ValueRange(gt=0.0), ValueRange(gte=10.0, lte=50.0)]),
        bucket=bucket,
        group_by=group_by,
        top=rng.choice([None, 2]) if group_by and not bucket else None,
        order=rng.choice(list(SortOrder)),
        tz=zone,
    )
    rows, _ = fold_buckets(query, buckets)
    assert approx_rows(rows) == approx_rows(brute(query, buckets)), query


def test_a_window_of_whole_buckets_reads_no_point() -> None:
    buckets = random_buckets(random.Random(7))
    query = AggregateQuery(fn=AggregateFn.AVG, group_by="name")
    rows, summaries = fold_buckets(query, buckets)
    assert summaries == sum(len(b) for b in buckets.values())
    assert approx_rows(rows) == approx_rows(brute(query, buckets))


def test_columns_of_a_part_of_the_window_enter_only_there() -> None:
    """What lets another source (rollups) sum the middle of a window while buckets give its ends."""
    query = AggregateQuery(fn=AggregateFn.SUM, start=T0, end=T0 + timedelta(hours=1))
    fold = AggregateFold(query)
    first_half = AggregatePlan(replace(query, end=T0 + timedelta(minutes=30)))
    at = millis(T0)
    fold.add_columns([None], [at - 1, at + 10 * MINUTE, at + 40 * MINUTE], [1.0, 2.0, 4.0], first_half)
    fold.add_summary([None], at + 30 * MINUTE, at + 59 * MINUTE, 3, 30.0, 5.0, 15.0)  # e.g. half-hour rollups
    assert fold.rows() == [Row(32.0, 4)]
