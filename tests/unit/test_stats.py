"""Self-metrics: per-worker records add up across workers, and render as /stats JSON and Prometheus text."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families

from telemetry_server.services.stats_exposition import prometheus_text
from telemetry_server.services.stats_records import CacheLevel, Stats
from telemetry_server.services.stats_service import StatsService
from tests.unit.conftest import Harness


class PostedStats:
    """A StatsBoard holding what other workers posted."""

    def __init__(self, **posted: Stats) -> None:
        self.posted = {worker: stats.to_json() for worker, stats in posted.items()}

    async def post(self, worker: str, snapshot: dict[str, Any]) -> None:
        self.posted[worker] = snapshot

    async def collect(self) -> dict[str, dict[str, Any]]:
        return dict(self.posted)


def samples(text: bytes) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Each sample of a Prometheus text, by its name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
    }


def test_the_figures_of_all_workers_add_up() -> None:
    one, two = Stats(), Stats()
    one.observe_request("list_metrics", 200, 0.7)
    two.observe_request("list_metrics", 200, 30)
    two.observe_request("create_metrics", 201, 3)
    one.cache[CacheLevel.L1].count(True)
    two.cache[CacheLevel.L1].count(False)
    two.cache[CacheLevel.L2].count(True)
    two.batch_sizes.observe(40)
    two.count_limited()

    service = StatsService(one, PostedStats(two=two))
    overview = asyncio.run(service.overview())
    assert overview["scope"] == "all workers"
    assert overview["workers"] == sorted([service.worker, "two"])
    assert {(r["route"], r["count"]) for r in overview["requests"]} == {("create_metrics", 1), ("list_metrics", 2)}
    assert overview["latency_ms"]["list_metrics"]["count"] == 2
    assert overview["cache"] == {
        "l1_hits": 1,
        "l1_misses": 1,
        "l2_hits": 1,
        "l1_hit_ratio": 0.5,
        "l2_hit_ratio": 1.0,
    }
    assert overview["batch_sizes"]["sum"] == 40
    assert overview["rate_limited"] == 1


def test_a_worker_posts_its_own_figures_which_it_counts_once() -> None:
    stats, board = Stats(), PostedStats()
    stats.observe_request("list_metrics", 200, 1)
    service = StatsService(stats, board)
    asyncio.run(board.post(service.worker, stats.to_json()))
    overview = asyncio.run(service.overview())
    assert overview["workers"] == [service.worker]
    assert overview["requests"] == [{"route": "list_metrics", "status": 200, "count": 1}]


def test_figures_read_back_from_json_are_the_same() -> None:
    stats = Stats()
    stats.observe_request("list_metrics", 200, 0.7)
    stats.observe_request("list_metrics", 404, 3000)
    stats.cache[CacheLevel.L2].count(False)
    stats.pool_wait_ms.observe(2)
    stats.count_limited()
    posted = orjson.loads(orjson.dumps(stats.to_json()))
    assert Stats.from_json(posted).to_json() == stats.to_json()


def test_prometheus_text_has_help_type_and_cumulative_buckets() -> None:
    stats = Stats()
    for millis in (0.2, 3, 3, 800):
        stats.observe_request("list_metrics", 200, millis)
    stats.cache[CacheLevel.L1].count(True)
    text = prometheus_text(stats)
    assert b"# HELP telemetry_requests_total " in text
    assert b"# TYPE telemetry_request_duration_seconds histogram" in text
    found = samples(text)
    route = ("route", "list_metrics")
    assert found["telemetry_requests_total", frozenset({route, ("status", "200")})] == 4
    assert found["telemetry_request_duration_seconds_bucket", frozenset({route, ("le", "0.0005")})] == 1
    assert found["telemetry_request_duration_seconds_bucket", frozenset({route, ("le", "0.005")})] == 3
    assert found["telemetry_request_duration_seconds_bucket", frozenset({route, ("le", "+Inf")})] == 4
    assert found["telemetry_request_duration_seconds_count", frozenset({route})] == 4
    assert found["telemetry_request_duration_seconds_sum", frozenset({route})] == 0.8062
    assert found["telemetry_cache_events_total", frozenset({("level", "l1"), ("outcome", "hits")})] == 1
    assert found["telemetry_write_batch_size_bucket", frozenset({("le", "1")})] == 0
    assert found["telemetry_mongo_pool_wait_seconds_count", frozenset()] == 0
    assert found["telemetry_rate_limited_total", frozenset()] == 0


def test_prometheus_label_values_are_escaped() -> None:
    stats = Stats()
    stats.observe_request('a "quoted"\\route\n', 200, 1)
    found = samples(prometheus_text(stats))
    assert found["telemetry_requests_total", frozenset({("route", 'a "quoted"\\route\n'), ("status", "200")})] == 1


def test_stats_and_prometheus_endpoints(harness: Harness) -> None:
    assert harness.client.get("/metrics").status == 200
    reply = harness.client.get("/stats")
    assert reply.status == 200
    assert set(reply.json()) == {
        "scope",
        "workers",
        "requests",
        "latency_ms",
        "cache",
        "batch_sizes",
        "pool_wait_ms",
        "rate_limited",
    }
    assert {"route": "list_metrics", "status": 200, "count": 1} in reply.json()["requests"]
    reply = harness.client.get("/internal/metrics")
    assert reply.status == 200
    assert reply.header("content-type") == "text/plain; version=0.0.4; charset=utf-8"
    found = samples(reply.body)
    assert found["telemetry_requests_total", frozenset({("route", "list_metrics"), ("status", "200")})] == 1
