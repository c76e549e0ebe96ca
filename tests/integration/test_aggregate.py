"""GET /metrics/aggregate against a seeded data set: every result checked against values computed here."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from pymongo import AsyncMongoClient

from telemetry_server.models.aggregation import parse_aggregate_query
from telemetry_server.storage.bucket_aggregation import BucketAggregationStore
from telemetry_server.storage.mongo_series import SeriesRegistry
from tests.brute_force import Reading, brute_force

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
WINDOW = {"from": "2026-01-05T00:00:00Z", "to": "2026-01-06T00:00:00Z"}


class DataSet:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.cpu = f"{prefix}cpu.load"
        self.points: list[dict[str, object]] = []
        for i in range(120):
            tags = [f"host:h{i % 4}", "env:prod" if i % 2 else "env:dev"]
            value = (i * 37 % 101) + 0.5 * (i % 3)
            self._add(self.cpu, value, T0 + timedelta(seconds=61 * i), tags)
        for name, count in (("login", 30), ("signup", 20), ("logout", 10)):
            for i in range(count):
                self._add(f"{prefix}events.{name}", 1.0, T0 + timedelta(seconds=60 * i), [])

    def _add(self, name: str, value: float, at: datetime, tags: list[str]) -> None:
        self.points.append({"name": name, "value": value, "timestamp": at, "tags": tags})

    def values(self, name: str, where: Callable[[dict[str, object]], bool] = lambda p: True) -> list[float]:
        return [p["value"] for p in self.points if p["name"] == name and where(p)]  # type: ignore[misc]


def nearest_rank(values: list[float], percentile: int) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(percentile / 100 * len(ordered))) - 1]


@pytest.fixture(scope="module")
def data(base_url: str) -> DataSet:
    data = DataSet(f"agg{uuid.uuid4().hex[:8]}.")
    body = [{**p, "timestamp": p["timestamp"].isoformat()} for p in data.points]  # type: ignore[attr-defined]
    with httpx.Client(base_url=base_url, timeout=60) as http:
        response = http.post("/metrics", json=body)
        assert response.status_code == 201, response.text
    return data  # left in place: the random prefix keeps it out of every other test's way


def aggregate(client: httpx.Client, **params: object) -> dict[str, object]:
    response = client.get("/metrics/aggregate", params={**WINDOW, **params})
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


@pytest.mark.parametrize("fn", ["count", "sum", "avg", "min", "max", "p50", "p90", "p95", "p99"])
def test_each_function_over_one_name(client: httpx.Client, data: DataSet, fn: str) -> None:
    values = data.values(data.cpu)
    plain = {"count": len(values), "sum": sum(values), "avg": sum(values) / len(values)}
    plain.update({"min": min(values), "max": max(values)})
    expected = plain[fn] if fn in plain else nearest_rank(values, int(fn[1:]))
    body = aggregate(client, name=data.cpu, fn=fn)
    assert body["rows"] == [{"value": pytest.approx(expected), "count": len(values)}]
    assert body["query"]["fn"] == fn  # type: ignore[index]
    assert body["stats"]["path"] in ("server", "fallback")  # type: ignore[index]
    assert isinstance(body["took_ms"], float)


def test_tag_filter_and_value_bounds(client: httpx.Client, data: DataSet) -> None:
    prod = data.values(data.cpu, lambda p: "env:prod" in p["tags"])  # type: ignore[operator]
    body = aggregate(client, name=data.cpu, tag="env:prod", fn="avg")
    assert body["rows"] == [{"value": pytest.approx(sum(prod) / len(prod)), "count": len(prod)}]
    high = [v for v in data.values(data.cpu) if v > 90]
    body = aggregate(client, name=data.cpu, fn="count", value_gt="90")
    assert body["rows"] == [{"value": len(high), "count": len(high)}]


def test_buckets_of_fifteen_minutes(client: httpx.Client, data: DataSet) -> None:
    expected: dict[datetime, list[float]] = defaultdict(list)
    for p in data.points:
        if p["name"] == data.cpu:
            at: datetime = p["timestamp"]  # type: ignore[assignment]
            expected[at.replace(minute=at.minute // 15 * 15, second=0)].append(p["value"])  # type: ignore[arg-type]
    body = aggregate(client, name=data.cpu, fn="max", bucket="15m")
    assert [(r["bucket"], r["value"], r["count"]) for r in body["rows"]] == [  # type: ignore[attr-defined]
        (start.strftime("%Y-%m-%dT%H:%M:00.000Z"), max(vs), len(vs)) for start, vs in sorted(expected.items())
    ]


def test_hour_buckets_follow_the_local_clock_of_tz(client: httpx.Client, data: DataSet) -> None:
    zone = ZoneInfo("Asia/Kolkata")  # UTC+05:30: local hours start at :30 UTC
    expected: dict[datetime, int] = defaultdict(int)
    for p in data.points:
        if p["name"] == data.cpu:
            local = p["timestamp"].astimezone(zone)  # type: ignore[attr-defined]
            expected[local.replace(minute=0, second=0).astimezone(UTC)] += 1
    body = aggregate(client, name=data.cpu, fn="count", bucket="1h", tz="Asia/Kolkata")
    assert [(r["bucket"], r["value"]) for r in body["rows"]] == [  # type: ignore[attr-defined]
        (start.strftime("%Y-%m-%dT%H:%M:00.000Z"), n) for start, n in sorted(expected.items())
    ]


def test_group_by_a_tag_key(client: httpx.Client, data: DataSet) -> None:
    groups: dict[str, list[float]] = defaultdict(list)
    for p in data.points:
        if p["name"] == data.cpu:
            host = next(t for t in p["tags"] if t.startswith("host:"))  # type: ignore[attr-defined]
            groups[host.removeprefix("host:")].append(p["value"])  # type: ignore[arg-type]
    body = aggregate(client, name=data.cpu, fn="avg", group_by="host")
    assert body["rows"] == [
        {"group": g, "value": pytest.approx(sum(vs) / len(vs)), "count": len(vs)} for g, vs in sorted(groups.items())
    ]
    top = aggregate(client, name=data.cpu, fn="p90", group_by="host", top=2)
    ranked = sorted(((nearest_rank(vs, 90), g) for g, vs in groups.items()), key=lambda r: (-r[0], r[1]))
    assert [(r["group"], r["value"]) for r in top["rows"]] == [(g, v) for v, g in ranked[:2]]  # type: ignore[attr-defined]
    bottom = aggregate(client, name=data.cpu, fn="min", group_by="host", top=1, order="asc")
    lowest = min((min(vs), g) for g, vs in groups.items())
    assert [(r["group"], r["value"]) for r in bottom["rows"]] == [(lowest[1], lowest[0])]  # type: ignore[attr-defined]


def test_top_names_under_a_prefix(client: httpx.Client, data: DataSet) -> None:
    body = aggregate(client, name_prefix=f"{data.prefix}events", fn="count", group_by="name", top=2)
    assert [(r["group"], r["value"]) for r in body["rows"]] == [  # type: ignore[attr-defined]
        (f"{data.prefix}events.login", 30),
        (f"{data.prefix}events.signup", 20),
    ]
    total = aggregate(client, name_prefix=f"{data.prefix}events", fn="sum")
    assert total["rows"] == [{"value": 60, "count": 60}]


def test_an_empty_window_counts_zero(client: httpx.Client, data: DataSet) -> None:
    response = client.get("/metrics/aggregate", params={"name": data.cpu, "fn": "count", "range": "1h"})
    assert response.json()["rows"] == [{"value": 0, "count": 0}]
    response = client.get("/metrics/aggregate", params={"name": data.cpu, "fn": "avg", "range": "1h"})
    assert response.json()["rows"] == [{"value": None, "count": 0}]


def test_a_repeated_query_is_served_from_the_cache(client: httpx.Client, data: DataSet) -> None:
    params = {"name": data.cpu, "fn": "p95", "group_by": "env"}
    first = aggregate(client, **params)
    again = aggregate(client, **params)
    assert again["rows"] == first["rows"]
    assert again["cached"] is True


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"fn": "p75"}, "fn"),
        ({"top": "3"}, "top"),
        ({"bucket": "7m"}, "bucket"),
        ({"tz": "Mars/Olympus"}, "tz"),
        ({"range": "soon"}, "range"),
        ({"colour": "red"}, "colour"),
        ({"name": "a", "name_prefix": "b"}, "name_prefix"),
    ],
)
def test_invalid_parameters_are_422(client: httpx.Client, params: dict[str, str], field: str) -> None:
    response = client.get("/metrics/aggregate", params=params)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert field in [e["field"] for e in response.json()["errors"]]


def test_the_static_path_wins_over_metrics_id(client: httpx.Client) -> None:
    assert client.put("/metrics/aggregate", json={}).status_code == 405


def test_listing_filters_by_value(client: httpx.Client, data: DataSet) -> None:
    response = client.get("/metrics", params={"name": data.cpu, "value_gte": "99", "limit": "1000"})
    assert sorted(m["value"] for m in response.json()["items"]) == sorted(v for v in data.values(data.cpu) if v >= 99)


def test_the_store_computes_what_single_points_give(mongo_uri: str, data: DataSet) -> None:
    """The bucket store on the server's data agrees with a point-by-point computation of the same queries."""
    now = datetime.now(UTC)
    queries = [
        [("name", data.cpu), ("fn", "p95"), ("bucket", "30m")],
        [("name", data.cpu), ("fn", "avg"), ("group_by", "host"), ("top", "3")],
        [("name_prefix", f"{data.prefix}events"), ("fn", "count"), ("group_by", "name")],
        [("name", data.cpu), ("fn", "sum"), ("bucket", "1d"), ("tz", "America/New_York")],
    ]
    readings = [Reading(p["timestamp"], p["value"], p["name"], tuple(p["tags"])) for p in data.points]  # type: ignore[arg-type]

    async def compare() -> None:
        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongo_uri, tz_aware=True)
        try:
            database = client["telemetry_server_test"]
            store = BucketAggregationStore(database, SeriesRegistry(database, 1_000_000))
            for params in queries:
                query = parse_aggregate_query([*WINDOW.items(), *params], now)
                stored = await store.aggregate(query, 10_000)
                assert [r.to_json() for r in brute_force(readings, query)] == [
                    {**r.to_json(), "value": pytest.approx(r.value)} for r in stored
                ], params
        finally:
            await client.close()

    asyncio.run(compare())
