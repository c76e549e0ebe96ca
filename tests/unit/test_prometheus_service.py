"""The Prometheus API's pure parts and its service with doubles: parameters, the merge of a series' samples,
the error envelope, and the cache dependency a query's answer is kept under."""

from __future__ import annotations

import asyncio
from array import array
from collections.abc import Sequence
from typing import Any

import orjson
import pytest

from telemetry_server.errors import BadRequest, NotFound, QueryTimedOut, StorageUnavailable
from telemetry_server.models.prometheus_params import MAX_MS, MIN_MS, parse_duration, parse_time
from telemetry_server.ports import Lookup
from telemetry_server.promql.engine import QueryLimits
from telemetry_server.promql.errors import BadData, TooLarge
from telemetry_server.promql.source import Matcher, RawSeries
from telemetry_server.routes.prometheus import prometheus_error
from telemetry_server.services.bulkhead import Bulkhead
from telemetry_server.services.prometheus_service import InstantQuery, PrometheusService, RangeQuery
from telemetry_server.storage.bucket_columns import Columns
from telemetry_server.storage.bucket_series_source import samples


@pytest.mark.parametrize(
    ("text", "millis"),
    [
        ("1700000000", 1_700_000_000_000),
        ("1700000000.123", 1_700_000_000_123),
        ("2023-11-14T22:13:20Z", 1_700_000_000_000),
        ("2023-11-14T22:13:20.123456789Z", 1_700_000_000_123),
        ("2023-11-15T00:13:20+02:00", 1_700_000_000_000),
        ("-292273086-05-16T16:47:06Z", MIN_MS),
        ("292277025-08-18T07:12:54.999999999Z", MAX_MS),
    ],
)
def test_times_as_prometheus_reads_them(text: str, millis: int) -> None:
    assert parse_time(text, "time") == millis


@pytest.mark.parametrize("text", ["", "yesterday", "NaN", "2023-11-14T22:13:20", "1e400"])
def test_times_refused(text: str) -> None:
    with pytest.raises(BadRequest, match="'time'"):
        parse_time(text, "time")


@pytest.mark.parametrize(
    ("text", "millis"), [("15", 15_000), ("0.5", 500), ("1m30s", 90_000), ("500ms", 500), ("1d", 86_400_000)]
)
def test_durations_in_seconds_or_prometheus_units(text: str, millis: int) -> None:
    assert parse_duration(text, "step") == millis


@pytest.mark.parametrize("text", ["", "5 m", "m", "1s1m", "inf"])
def test_durations_refused(text: str) -> None:
    with pytest.raises(BadRequest, match="'step'"):
        parse_duration(text, "step")


def columns(points: list[tuple[int, int, float]]) -> Columns:
    return Columns(
        array("q", [p[0] for p in points]), array("d", [p[2] for p in points]), array("Q", [p[1] for p in points])
    )


def test_samples_merge_buckets_in_time_order_and_keep_the_last_write_of_a_millisecond() -> None:
    first = columns([(10, 1, 1.0), (30, 2, 3.0)])
    second = columns([(20, 5, 2.0), (30, 7, 33.0), (40, 8, 4.0)])
    assert as_lists(samples([first, second])) == ([10, 20, 30, 40], [1.0, 2.0, 33.0, 4.0])
    assert as_lists(samples([columns([(5, 1, 1.0), (5, 2, 2.0)])])) == ([5], [2.0])
    later = columns([(50, 9, 5.0), (60, 10, 6.0)])
    assert as_lists(samples([later, first])) == ([10, 30, 50, 60], [1.0, 3.0, 5.0, 6.0])  # disjoint: joined


def as_lists(found: tuple[Sequence[int], Sequence[float]]) -> tuple[list[int], list[float]]:
    return list(found[0]), list(found[1])


@pytest.mark.parametrize(
    ("error", "status", "error_type"),
    [
        (BadData("parse error"), 400, "bad_data"),
        (TooLarge("too many series"), 422, "execution"),
        (BadRequest("bad time"), 400, "bad_data"),
        (NotFound(), 404, "not_found"),
        (QueryTimedOut("slow"), 503, "timeout"),
        (StorageUnavailable("down"), 503, "unavailable"),
    ],
)
def test_errors_in_prometheus_envelope(error: Any, status: int, error_type: str) -> None:
    body, media_type = prometheus_error(None, error, "r-1")  # type: ignore[arg-type]
    document = orjson.loads(body)
    assert error.status == status
    assert document["status"] == "error"
    assert document["errorType"] == error_type
    assert error.detail in document["error"]
    assert media_type == b"application/json"


class Series:
    """A store of two series of one name; records the selects it answered."""

    def __init__(self) -> None:
        self.selects = 0

    async def select(self, matchers: Sequence[Matcher], start_ms: int, end_ms: int, *_: Any) -> list[RawSeries]:
        self.selects += 1
        return [RawSeries({"__name__": "up", "job": job}, [start_ms], [1.0]) for job in ("a", "b")]

    async def label_names(self, selectors: Sequence[Sequence[Matcher]]) -> list[str]:
        return ["__name__", "job"]

    async def label_values(self, label: str, selectors: Sequence[Sequence[Matcher]]) -> list[str]:
        return ["a", "b"]

    async def series(self, selectors: Sequence[Sequence[Matcher]]) -> list[dict[str, str]]:
        return [{"__name__": "up", "job": "a"}]


class Cache:
    """Keeps what is stored, under the dependency it was looked up with."""

    def __init__(self) -> None:
        self.values: dict[str, tuple[str, bytes]] = {}
        self.lookups: list[str] = []

    async def lookup(self, dependency: str, query_key: str) -> Lookup:
        self.lookups.append(dependency)
        found = self.values.get(query_key)
        value = found[1] if found is not None and found[0] == dependency else None
        return Lookup(value, b"g", dependency)

    async def store(self, query_key: str, lookup: Lookup, value: bytes) -> None:
        self.values[query_key] = (lookup.dependency, value)

    async def invalidate(self, dependencies: Sequence[str]) -> None:
        for key, (dependency, _) in list(self.values.items()):
            if dependency in dependencies:
                del self.values[key]

    async def ping(self) -> bool:
        return True

    async def aclose(self) -> None:
        pass


def service(store: Series, cache: Cache) -> PrometheusService:
    limits = QueryLimits(10, 1000, 5.0)
    return PrometheusService(store, cache, limits, Bulkhead(2, 5.0, "q", "retry"), clock_ms=lambda: 0)


def test_an_answer_is_cached_under_the_name_its_selectors_read_and_dropped_by_a_write_to_it() -> None:
    async def scenario() -> None:
        store, cache = Series(), Cache()
        prometheus = service(store, cache)
        query = RangeQuery("sum(up)", 0, 60_000, 15_000)
        first = orjson.loads(await prometheus.query(query, None))
        assert first["data"]["resultType"] == "matrix"
        assert cache.lookups == ["n:up"]
        selects = store.selects
        assert orjson.loads(await prometheus.query(query, None)) == first
        assert store.selects == selects  # answered from the cache
        await cache.invalidate(["n:up"])
        await prometheus.query(query, None)
        assert store.selects == selects + 1

    asyncio.run(scenario())


def test_a_query_of_several_names_depends_on_any_name() -> None:
    async def scenario() -> None:
        store, cache = Series(), Cache()
        prometheus = service(store, cache)
        await prometheus.query(InstantQuery("up + on(job) down", 1000), None)
        await prometheus.query(InstantQuery('{__name__=~"u.*"}', 1000), None)
        assert cache.lookups == ["*", "*"]

    asyncio.run(scenario())


def test_series_needs_a_selector_and_limits_cut_lists() -> None:
    async def scenario() -> None:
        prometheus = service(Series(), Cache())
        with pytest.raises(BadData, match="match"):
            await prometheus.series([])
        assert orjson.loads(await prometheus.label_values("job", ["up"], 1))["data"] == ["a"]
        with pytest.raises(BadData):
            await prometheus.label_names(["rate(up[5m])"])

    asyncio.run(scenario())
