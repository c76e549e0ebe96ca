"""A SeriesSource over series held in memory: the engine's tests, and a reference for storage adapters."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence

from telemetry_server.promql.matching import labels_predicate
from telemetry_server.promql.source import Matcher, RawSeries


class MemorySeriesSource:
    def __init__(self, series: Sequence[RawSeries]) -> None:
        self._series = list(series)

    async def select(self, matchers: Sequence[Matcher], start_ms: int, end_ms: int) -> list[RawSeries]:
        wanted = labels_predicate(matchers)
        out = []
        for series in self._series:
            if wanted(series.labels):
                lo, hi = bisect_left(series.timestamps, start_ms), bisect_right(series.timestamps, end_ms)
                out.append(RawSeries(series.labels, series.timestamps[lo:hi], series.values[lo:hi]))
        return out
