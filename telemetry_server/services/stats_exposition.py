"""The self-metrics shown: the JSON of `GET /stats`, and the Prometheus text of `GET /internal/metrics`
(written by prometheus_client's exposition, which spells HELP and TYPE and escapes label values)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from telemetry_server.services.stats_records import CacheLevel, Histogram, Stats

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric


def stats_json(total: Stats) -> dict[str, Any]:
    body = total.to_json()
    for level in CacheLevel:
        body["cache"][f"{level}_hit_ratio"] = total.cache[level].hit_ratio()
    return body


def prometheus_text(total: Stats) -> bytes:
    """The Prometheus text exposition format (version 0.0.4)."""
    # PERF: ~7 ms for 12 routes x 4 statuses (~270 samples) against ~0.8 ms with f-strings; paid per scrape,
    # not per request, for correct escaping and HELP/TYPE written by the library that defines the format.
    # Imported here, at a worker's first scrape: importing prometheus_client (its HTTP servers come along)
    # took ~0.15 s, a tenth of the app's import time, which every worker would pay at its cold start.
    from prometheus_client.exposition import generate_latest

    return generate_latest(_Collector(total))


class _Collector:
    """A prometheus_client collector over figures already added up: the families are built per scrape."""

    def __init__(self, total: Stats) -> None:
        self._total = total

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily

        total = self._total
        requests = CounterMetricFamily(
            "telemetry_requests", "HTTP requests answered, by route and status.", labels=("route", "status")
        )
        for (route, status), count in sorted(total.requests.items()):
            requests.add_metric((route, str(status)), count)
        yield requests

        latency = HistogramMetricFamily(
            "telemetry_request_duration_seconds", "Time to answer a request, by route.", labels=("route",)
        )
        for route, histogram in sorted(total.latency_ms.items()):
            latency.add_metric((route,), _buckets(histogram, scale=1000), histogram.total / 1000)
        yield latency

        cache = CounterMetricFamily(
            "telemetry_cache_events",
            "Cache lookups, by level (l1: the worker's, l2: Redis) and outcome.",
            labels=("level", "outcome"),
        )
        for level, counts in total.cache.items():
            for outcome, count in counts.by_outcome():
                if count:
                    cache.add_metric((level.value, outcome), count)
        yield cache

        batches = total.batch_sizes
        yield HistogramMetricFamily(
            "telemetry_write_batch_size",
            "Metrics per MongoDB insert_many.",
            buckets=_buckets(batches, scale=1),
            sum_value=batches.total,
        )
        waits = total.pool_wait_ms
        yield HistogramMetricFamily(
            "telemetry_mongo_pool_wait_seconds",
            "Time spent waiting for a MongoDB connection from the pool.",
            buckets=_buckets(waits, scale=1000),
            sum_value=waits.total / 1000,
        )
        yield CounterMetricFamily(
            "telemetry_rate_limited", "Requests refused for being over the rate limit.", value=total.rate_limited
        )


def _buckets(histogram: Histogram, scale: float) -> list[tuple[str, float]]:
    """Cumulative counts per upper bound, the bound scaled (milliseconds to seconds) and spelled as before."""
    out: list[tuple[str, float]] = []
    running = 0
    for bound, count in zip([*histogram.bounds, None], histogram.counts, strict=True):
        running += count
        out.append(("+Inf" if bound is None else f"{bound / scale:g}", running))
    return out
