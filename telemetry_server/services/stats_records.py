"""Self-metrics as typed records: request counts and latency histograms per route, cache hits per level, batch
sizes, pool waits and rate-limited requests; a worker's records travel as JSON and add up across workers."""

from __future__ import annotations

import bisect
from collections import defaultdict
from enum import StrEnum
from typing import Any

LATENCY_BUCKETS_MS = (0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0)
BATCH_BUCKETS = (1.0, 2.0, 5.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 5000.0, 10000.0)


class CacheLevel(StrEnum):
    L1 = "l1"  # this worker's memory
    L2 = "l2"  # Redis, shared by all workers


class CacheCounts:
    """Lookups of one cache level. The cache holds on to this record and counts into it directly.

    PERF: ~0.09 µs per event, against ~0.22 µs for a counter keyed by an f-string (`l1_hits`) and ~0.25 µs
    for one keyed by (CacheLevel, hit), whose enum member hashes in Python code (timeit, CPU time, 3.11).
    """

    __slots__ = ("hits", "misses")

    def __init__(self, hits: int = 0, misses: int = 0) -> None:
        self.hits = hits
        self.misses = misses

    def count(self, hit: bool) -> None:
        if hit:
            self.hits += 1
        else:
            self.misses += 1

    def add(self, other: CacheCounts) -> None:
        self.hits += other.hits
        self.misses += other.misses

    def by_outcome(self) -> tuple[tuple[str, int], tuple[str, int]]:
        """The counts under the words `GET /stats` (`l1_hits`) and the Prometheus label `outcome` use."""
        return ("hits", self.hits), ("misses", self.misses)

    def hit_ratio(self) -> float | None:
        looked_up = self.hits + self.misses
        return round(self.hits / looked_up, 4) if looked_up else None


class Histogram:
    """Counts per bucket (not cumulative; the last one is +Inf), their count and their sum."""

    __slots__ = ("bounds", "count", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.count = 0
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.count += 1
        self.total += value

    def add(self, other: Histogram) -> None:
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.count += other.count
        self.total += other.total

    def to_json(self) -> dict[str, Any]:
        return {"bounds": list(self.bounds), "counts": list(self.counts), "count": self.count, "sum": self.total}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Histogram:
        histogram = cls(tuple(data["bounds"]))
        histogram.counts = list(data["counts"])
        histogram.count = data["count"]
        histogram.total = data["sum"]
        return histogram


class Stats:
    """One per worker, updated on the hot path with plain dict and list operations only; also the sum of
    several workers' (`add`)."""

    def __init__(self) -> None:
        self.requests: defaultdict[tuple[str, int], int] = defaultdict(int)  # (route, status)
        self.latency_ms: dict[str, Histogram] = {}
        self.cache = {level: CacheCounts() for level in CacheLevel}
        self.batch_sizes = Histogram(BATCH_BUCKETS)
        self.pool_wait_ms = Histogram(LATENCY_BUCKETS_MS)
        self.rate_limited = 0

    def observe_request(self, route: str, status: int, millis: float) -> None:
        self.requests[route, status] += 1
        histogram = self.latency_ms.get(route)
        if histogram is None:
            histogram = self.latency_ms[route] = Histogram(LATENCY_BUCKETS_MS)
        histogram.observe(millis)

    def count_limited(self) -> None:
        self.rate_limited += 1

    def add(self, other: Stats) -> None:
        for key, count in other.requests.items():
            self.requests[key] += count
        for route, histogram in other.latency_ms.items():
            mine = self.latency_ms.get(route)
            if mine is None:
                mine = self.latency_ms[route] = Histogram(histogram.bounds)
            mine.add(histogram)
        for level, counts in other.cache.items():
            self.cache[level].add(counts)
        self.batch_sizes.add(other.batch_sizes)
        self.pool_wait_ms.add(other.pool_wait_ms)
        self.rate_limited += other.rate_limited

    def to_json(self) -> dict[str, Any]:
        """What a worker posts for the others, and the body of `GET /stats` (which adds hit ratios)."""
        return {
            "requests": [{"route": r, "status": s, "count": n} for (r, s), n in sorted(self.requests.items())],
            "latency_ms": {route: h.to_json() for route, h in sorted(self.latency_ms.items())},
            "cache": {  # a count appears once it is not zero
                f"{level}_{outcome}": count
                for level, counts in self.cache.items()
                for outcome, count in counts.by_outcome()
                if count
            },
            "batch_sizes": self.batch_sizes.to_json(),
            "pool_wait_ms": self.pool_wait_ms.to_json(),
            "rate_limited": self.rate_limited,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Stats:
        """Another worker's `to_json()`; a KeyError, TypeError or ValueError if it is not one."""
        stats = cls()
        for row in data["requests"]:
            stats.requests[row["route"], row["status"]] += row["count"]
        stats.latency_ms = {route: Histogram.from_json(h) for route, h in data["latency_ms"].items()}
        for level, counts in stats.cache.items():
            counts.hits = data["cache"].get(f"{level}_hits", 0)
            counts.misses = data["cache"].get(f"{level}_misses", 0)
        stats.batch_sizes = Histogram.from_json(data["batch_sizes"])
        stats.pool_wait_ms = Histogram.from_json(data["pool_wait_ms"])
        stats.rate_limited = data["rate_limited"]
        return stats
