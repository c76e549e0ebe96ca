"""Self-metrics: request counts and latency histograms per route, cache hits per level, batch sizes,
pool waits and rate-limited requests; snapshots merge across workers and render as Prometheus text."""

from __future__ import annotations

import bisect
from collections import defaultdict
from typing import Any

LATENCY_BUCKETS_MS = (0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0)
BATCH_BUCKETS = (1.0, 2.0, 5.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 5000.0, 10000.0)


class Histogram:
    __slots__ = ("bounds", "count", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.count = 0
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.count += 1
        self.total += value

    def to_dict(self) -> dict[str, Any]:
        return {"bounds": list(self.bounds), "counts": list(self.counts), "count": self.count, "sum": self.total}


class Stats:
    """One per worker; updated on the hot path with plain dict and list operations only."""

    def __init__(self) -> None:
        self.requests: defaultdict[tuple[str, int], int] = defaultdict(int)
        self.latency: dict[str, Histogram] = {}
        self.cache: defaultdict[str, int] = defaultdict(int)
        self.batch_sizes = Histogram(BATCH_BUCKETS)
        self.pool_wait_ms = Histogram(LATENCY_BUCKETS_MS)
        self.rate_limited = 0

    def observe_request(self, route: str, status: int, millis: float) -> None:
        self.requests[route, status] += 1
        histogram = self.latency.get(route)
        if histogram is None:
            histogram = self.latency[route] = Histogram(LATENCY_BUCKETS_MS)
        histogram.observe(millis)

    def count_limited(self) -> None:
        self.rate_limited += 1

    def cache_event(self, level: str, hit: bool) -> None:
        self.cache[f"{level}_{'hits' if hit else 'misses'}"] += 1

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": [{"route": r, "status": s, "count": n} for (r, s), n in sorted(self.requests.items())],
            "latency_ms": {route: h.to_dict() for route, h in sorted(self.latency.items())},
            "cache": dict(self.cache),
            "batch_sizes": self.batch_sizes.to_dict(),
            "pool_wait_ms": self.pool_wait_ms.to_dict(),
            "rate_limited": self.rate_limited,
        }


def merge_snapshots(snapshots: list[dict[str, Any]]) -> dict[str, Any]:
    """Add up the snapshots of several workers."""
    requests: defaultdict[tuple[str, int], int] = defaultdict(int)
    latency: dict[str, dict[str, Any]] = {}
    cache: defaultdict[str, int] = defaultdict(int)
    merged: dict[str, Any] = {"batch_sizes": None, "pool_wait_ms": None, "rate_limited": 0}
    for snap in snapshots:
        for row in snap["requests"]:
            requests[row["route"], row["status"]] += row["count"]
        for route, hist in snap["latency_ms"].items():
            latency[route] = _add_histograms(latency.get(route), hist)
        for key, value in snap["cache"].items():
            cache[key] += value
        merged["batch_sizes"] = _add_histograms(merged["batch_sizes"], snap["batch_sizes"])
        merged["pool_wait_ms"] = _add_histograms(merged["pool_wait_ms"], snap["pool_wait_ms"])
        merged["rate_limited"] += snap["rate_limited"]
    merged["requests"] = [{"route": r, "status": s, "count": n} for (r, s), n in sorted(requests.items())]
    merged["latency_ms"] = latency
    merged["cache"] = dict(cache)
    for level in ("l1", "l2"):
        hits, misses = cache.get(f"{level}_hits", 0), cache.get(f"{level}_misses", 0)
        merged["cache"][f"{level}_hit_ratio"] = round(hits / (hits + misses), 4) if hits + misses else None
    return merged


def _add_histograms(into: dict[str, Any] | None, other: dict[str, Any]) -> dict[str, Any]:
    if into is None:
        return {**other, "counts": list(other["counts"])}
    into["counts"] = [a + b for a, b in zip(into["counts"], other["counts"], strict=True)]
    into["count"] += other["count"]
    into["sum"] += other["sum"]
    return into


def to_prometheus(snapshot: dict[str, Any]) -> str:
    """The Prometheus text exposition format (version 0.0.4)."""
    lines = ["# TYPE telemetry_requests_total counter"]
    for row in snapshot["requests"]:
        lines.append(f'telemetry_requests_total{{route="{row["route"]}",status="{row["status"]}"}} {row["count"]}')
    lines.append("# TYPE telemetry_request_duration_seconds histogram")
    for route, hist in snapshot["latency_ms"].items():
        lines += _histogram_lines("telemetry_request_duration_seconds", hist, f'route="{route}"', scale=1000)
    lines.append("# TYPE telemetry_cache_events_total counter")
    for key, value in sorted(snapshot["cache"].items()):
        if not key.endswith("_ratio"):
            level, _, outcome = key.partition("_")
            lines.append(f'telemetry_cache_events_total{{level="{level}",outcome="{outcome}"}} {value}')
    lines.append("# TYPE telemetry_write_batch_size histogram")
    if snapshot["batch_sizes"]:
        lines += _histogram_lines("telemetry_write_batch_size", snapshot["batch_sizes"], "", scale=1)
    lines.append("# TYPE telemetry_mongo_pool_wait_seconds histogram")
    if snapshot["pool_wait_ms"]:
        lines += _histogram_lines("telemetry_mongo_pool_wait_seconds", snapshot["pool_wait_ms"], "", scale=1000)
    lines.append("# TYPE telemetry_rate_limited_total counter")
    lines.append(f"telemetry_rate_limited_total {snapshot['rate_limited']}")
    return "\n".join(lines) + "\n"


def _histogram_lines(metric: str, hist: dict[str, Any], labels: str, scale: float) -> list[str]:
    sep = "," if labels else ""
    out, running = [], 0
    for bound, count in zip([*hist["bounds"], None], hist["counts"], strict=True):
        running += count
        le = "+Inf" if bound is None else f"{bound / scale:g}"
        out.append(f'{metric}_bucket{{{labels}{sep}le="{le}"}} {running}')
    braces = f"{{{labels}}}" if labels else ""
    out.append(f"{metric}_sum{braces} {hist['sum'] / scale:g}")
    out.append(f"{metric}_count{braces} {hist['count']}")
    return out
