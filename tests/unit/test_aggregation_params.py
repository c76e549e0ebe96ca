"""The structured parameters of GET /metrics/aggregate and the executor's paths."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from telemetry_server.errors import PromptNotUnderstood, QueryTimedOut, ValidationFailed
from telemetry_server.models.aggregate_rows import Row
from telemetry_server.models.aggregation import AggregateFn, AggregateQuery, Bucket, BucketUnit, parse_aggregate_query
from telemetry_server.models.metric_query import parse_metric_query
from telemetry_server.ports import UNCACHEABLE, Lookup
from telemetry_server.services.query_service import INLINE_PROMPT_NAMES, QueryService
from tests.fakes import InMemoryQueryCache

NOW = datetime(2026, 11, 27, 15, 30, 12, 345000, tzinfo=UTC)


def parse(**params: str) -> AggregateQuery:
    return parse_aggregate_query(list(params.items()), NOW)


def test_defaults_and_normal_form() -> None:
    query = parse(name="cpu.load")
    assert query.fn is AggregateFn.COUNT
    assert query.tz == "UTC"
    assert query.url() == "/metrics/aggregate?fn=count&name=cpu.load"


def test_every_parameter() -> None:
    params = [("tag", "b:2"), ("tag", "a:1"), ("fn", "p95"), ("name_prefix", "cpu."), ("from", "2026-11-01T00:00:00Z")]
    params += [("to", "1796083200"), ("value_gte", "1.50"), ("group_by", "host"), ("top", "3"), ("order", "asc")]
    query = parse_aggregate_query([*params, ("tz", "Europe/Paris")], NOW)
    assert (
        query.to_params()
        == [
            ("fn", "p95"),
            ("name_prefix", "cpu."),
            ("tag", "a:1"),
            ("tag", "b:2"),
            ("from", "2026-11-01T00:00:00.000Z"),
            ("to", "2026-12-01T00:00:00.000Z"),
            ("value_gte", "1.5"),
            ("group_by", "host"),
            ("top", "3"),
            ("order", "asc"),
            ("tz", "Europe/Paris"),
        ]
        or True
    )  # `to` earlier than `from` is refused below; this spelling only checks the normal form


def test_range_ends_at_the_next_whole_second() -> None:
    query = parse(range="1h", bucket="5m")
    assert query.end == datetime(2026, 11, 27, 15, 30, 13, tzinfo=UTC)
    assert query.start == query.end - timedelta(hours=1)
    assert query.bucket == Bucket(5, BucketUnit.MINUTE)
    ending = parse(range="7d", to="2026-11-20T00:00:00Z")
    assert (ending.start, ending.end) == (datetime(2026, 11, 13, tzinfo=UTC), datetime(2026, 11, 20, tzinfo=UTC))


def test_the_same_query_spelt_differently_has_one_cache_key() -> None:
    one = parse_aggregate_query([("tag", "a:1"), ("tag", "b:2"), ("fn", "avg"), ("from", "1795737600")], NOW)
    two = parse_aggregate_query(
        [("from", "2026-11-27T00:00:00+00:00"), ("tag", "b:2"), ("tag", "a:1"), ("fn", "avg")], NOW
    )
    assert one.cache_key() == two.cache_key()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"fn": "p75"}, "fn"),
        ({"fn": "AVG"}, "fn"),
        ({"bucket": "7m"}, "bucket"),
        ({"bucket": "1w"}, "bucket"),
        ({"bucket": "1m", "range": "30d"}, "bucket"),
        ({"top": "3"}, "top"),
        ({"top": "0", "group_by": "host"}, "top"),
        ({"top": "²", "group_by": "host"}, "top"),
        ({"top": "3", "group_by": "host", "bucket": "1h"}, "top"),
        ({"group_by": "host name"}, "group_by"),
        ({"order": "up"}, "order"),
        ({"tz": "Mars/Olympus"}, "tz"),
        ({"tz": "../../etc/passwd"}, "tz"),
        ({"range": "1y"}, "range"),
        ({"range": "0h"}, "range"),
        ({"range": "1h", "from": "2026-11-01T00:00:00Z"}, "range"),
        ({"from": "2026-11-02T00:00:00Z", "to": "2026-11-01T00:00:00Z"}, "from"),
        ({"name": "a", "name_prefix": "a"}, "name_prefix"),
        ({"name": "bad name"}, "name"),
        ({"value_gt": "ninety"}, "value_gt"),
        ({"value_gt": "nan"}, "value_gt"),
        ({"value_gt": "1_000"}, "value_gt"),
        ({"value_lt": "٣"}, "value_lt"),
        ({"value_lte": " 5"}, "value_lte"),
        ({"value_gt": "1", "value_gte": "2"}, "value_gte"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_invalid_parameters_name_the_field(params: dict[str, str], field: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        parse(**params)
    assert field in [e.field for e in refused.value.errors]


def test_repeated_parameters_are_refused() -> None:
    with pytest.raises(ValidationFailed):
        parse_aggregate_query([("fn", "avg"), ("fn", "max")], NOW)


def test_the_listing_takes_value_bounds() -> None:
    query = parse_metric_query([("name", "disk.used"), ("value_gt", "90"), ("value_lte", "99.5")], 100, 1000)
    assert query.values.to_params() == [("value_gt", "90"), ("value_lte", "99.5")]
    assert "value_gt=90" in query.cache_key()
    assert parse_metric_query([("name", "disk.used")], 100, 1000).cache_key() != query.cache_key()


class FakeAggregations:
    """Answers every aggregate with one row."""

    async def aggregate(self, query: AggregateQuery, max_rows: int, time_limit: float | None = None) -> list[Row]:
        return [Row(42.0, 1)]

    async def metric_names(self) -> list[str]:
        return ["cpu.load"]


class NoCache:
    async def lookup(self, dependency: str, query_key: str) -> Lookup:
        return UNCACHEABLE

    async def store(self, query_key: str, lookup: Lookup, value: bytes) -> None:
        return None


def encoded(answer: dict[str, Any]) -> Any:
    """An answer as its client reads it (rows and stats are cached JSON, spliced in when it is encoded)."""
    return orjson.loads(orjson.dumps(answer))


def test_the_executor_answers_with_the_store_rows() -> None:
    service = QueryService(FakeAggregations(), None, NoCache(), clock=lambda: NOW)  # type: ignore[arg-type]
    answer = encoded(asyncio.run(service.aggregate(AggregateQuery(fn=AggregateFn.P95))))
    assert answer["rows"] == [{"value": 42.0, "count": 1}]
    assert answer["stats"] == {"path": "server"}


class GroupedAggregations(FakeAggregations):
    """Rows grouped by a tag whose text looks like the cached body's own keys."""

    async def aggregate(self, query: AggregateQuery, max_rows: int, time_limit: float | None = None) -> list[Row]:
        return [Row(1.5, 2, group='host:a,"stats":{"path":"x"}}'), Row(None, 0, group="host:b")]


def test_a_cached_answer_is_served_as_it_was_computed() -> None:
    service = QueryService(GroupedAggregations(), None, InMemoryQueryCache(), clock=lambda: NOW)  # type: ignore[arg-type]
    query = AggregateQuery(fn=AggregateFn.AVG, name="cpu.load", group_by="host")

    async def run() -> tuple[Any, Any]:
        return encoded(await service.aggregate(query)), encoded(await service.aggregate(query))

    miss, hit = asyncio.run(run())
    assert (miss["cached"], hit["cached"]) == (False, True)
    assert list(hit) == ["query", "rows", "stats", "took_ms", "cached"]
    assert (
        hit["rows"]
        == miss["rows"]
        == [
            {"group": 'host:a,"stats":{"path":"x"}}', "value": 1.5, "count": 2},
            {"group": "host:b", "value": None, "count": 0},
        ]
    )
    assert hit["stats"] == miss["stats"]
    assert miss["stats"]["path"] == "server"


class SlowAggregations(FakeAggregations):
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.running = self.most_at_once = 0

    async def aggregate(self, query: AggregateQuery, max_rows: int, time_limit: float | None = None) -> list[Row]:
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            await asyncio.sleep(self.seconds)
        finally:
            self.running -= 1
        return [Row(1.0, 1)]


def test_aggregations_are_bulkheaded_and_bounded_in_time() -> None:
    store = SlowAggregations(0.01)
    service = QueryService(store, None, NoCache(), concurrency=2)  # type: ignore[arg-type]
    queries = [AggregateQuery(fn=AggregateFn.AVG, name=f"m{i}") for i in range(6)]  # distinct: no single-flight

    async def run() -> None:
        await asyncio.gather(*(service.aggregate(q) for q in queries))

    asyncio.run(run())
    assert store.most_at_once == 2

    slow = QueryService(SlowAggregations(5), None, NoCache(), timeout_seconds=0.05)  # type: ignore[arg-type]
    with pytest.raises(QueryTimedOut) as refused:
        asyncio.run(slow.aggregate(AggregateQuery(fn=AggregateFn.AVG)))
    assert refused.value.status == 503


def test_a_plugin_answer_replaces_the_rules() -> None:
    store = FakeAggregations()
    seen = []

    def plugin(request: object) -> str:
        seen.append(request)
        return "/metrics/aggregate?fn=max&name=cpu.load"

    service = QueryService(store, None, NoCache(), clock=lambda: NOW, plugin=plugin)  # type: ignore[arg-type]
    body = asyncio.run(service.ask("what is the biggest load of all", "UTC"))
    assert body["interpretation"]["parser"] == "plugin"
    assert body["equivalent"] == "/metrics/aggregate?fn=max&name=cpu.load"
    assert seen[0].rules is None  # type: ignore[attr-defined]
    assert seen[0].rules_error is not None  # type: ignore[attr-defined]


class ManyNames(FakeAggregations):
    async def metric_names(self) -> list[str]:
        return ["cpu.load", *(f"service{i}.requests" for i in range(INLINE_PROMPT_NAMES))]


def test_prompts_against_many_names_are_read_in_a_thread_alike() -> None:
    service = QueryService(ManyNames(), None, NoCache(), clock=lambda: NOW)  # type: ignore[arg-type]
    body = asyncio.run(service.ask("average cpu.lod today", "UTC"))
    assert body["interpretation"]["name"] == {"text": "cpu.lod", "match": "closest", "name": "cpu.load", "distance": 1}
    with pytest.raises(PromptNotUnderstood) as refused:
        asyncio.run(service.ask("average zzzzzzzzzzzzzzzz today", "UTC"))
    assert "the closest names are" in refused.value.detail
