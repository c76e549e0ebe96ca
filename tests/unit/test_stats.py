"""Self-metrics: per-worker counters merge into one view and render as Prometheus text."""

from __future__ import annotations

from telemetry_server.services.stats import Stats, merge_snapshots, to_prometheus


def test_snapshots_of_workers_add_up() -> None:
    one, two = Stats(), Stats()
    one.observe_request("list_metrics", 200, 0.7)
    two.observe_request("list_metrics", 200, 30)
    two.observe_request("create_metrics", 201, 3)
    one.cache_event("l1", True)
    two.cache_event("l1", False)
    two.cache_event("l2", True)
    two.batch_sizes.observe(40)
    two.count_limited()

    merged = merge_snapshots([one.snapshot(), two.snapshot()])
    assert {(r["route"], r["count"]) for r in merged["requests"]} == {("create_metrics", 1), ("list_metrics", 2)}
    assert merged["latency_ms"]["list_metrics"]["count"] == 2
    assert merged["cache"]["l1_hit_ratio"] == 0.5
    assert merged["cache"]["l2_hit_ratio"] == 1.0
    assert merged["batch_sizes"]["sum"] == 40
    assert merged["rate_limited"] == 1


def test_prometheus_text_has_cumulative_buckets() -> None:
    stats = Stats()
    for millis in (0.2, 3, 3, 800):
        stats.observe_request("list_metrics", 200, millis)
    text = to_prometheus(merge_snapshots([stats.snapshot()]))
    assert 'telemetry_requests_total{route="list_metrics",status="200"} 4' in text
    assert 'telemetry_request_duration_seconds_bucket{route="list_metrics",le="0.0005"} 1' in text
    assert 'telemetry_request_duration_seconds_bucket{route="list_metrics",le="0.005"} 3' in text
    assert 'telemetry_request_duration_seconds_bucket{route="list_metrics",le="+Inf"} 4' in text
    assert 'telemetry_request_duration_seconds_count{route="list_metrics"} 4' in text
