"""BucketSeriesSource: PromQL's series over our storage. Matchers resolve to series ids in the worker's series
index (equalities through its postings, the rest by testing each candidate's labels); samples come from the
buckets; label names and values come from the index alone, without reading a point.
"""

from __future__ import annotations

import heapq
import itertools
from array import array
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from telemetry_server.promql.errors import BadData, TooLarge
from telemetry_server.promql.labels import NAME_LABEL, our_name, prometheus_name, series_labels, tag_of_label
from telemetry_server.promql.matching import value_predicate
from telemetry_server.promql.source import Matcher, RawSeries
from telemetry_server.storage.bucket_aggregation import BucketAggregationStore
from telemetry_server.storage.bucket_columns import Columns
from telemetry_server.storage.mongo_series import SeriesRegistry


class BucketSeriesSource:
    def __init__(self, registry: SeriesRegistry, points: BucketAggregationStore) -> None:
        self._registry = registry
        self._points = points

    async def select(
        self,
        matchers: Sequence[Matcher],
        start_ms: int,
        end_ms: int,
        max_series: int,
        max_points: int,
        time_limit: float | None,
    ) -> list[RawSeries]:
        """Every series matching all matchers with its samples in [start_ms, end_ms]. TooLarge past `max_series`
        series (before a point is read) or `max_points` samples."""
        found = await self.matching(matchers)
        if len(found) > max_series:
            raise TooLarge(f"the selector matches {len(found)} series, more than {max_series} (PROMQL_MAX_SERIES)")
        if not found:
            return []
        columns = await self._points.series_points(found, start_ms, end_ms, time_limit)
        if sum(len(part) for parts in columns.values() for part in parts) > max_points:
            raise TooLarge(f"the selector reads more than {max_points} samples (PROMQL_MAX_POINTS)")
        # One label set may be several of our series (the same tags in another order): one Prometheus series.
        merged: dict[tuple[tuple[str, str], ...], list[Columns]] = {}
        for series_id, labels in found.items():
            merged.setdefault(tuple(sorted(labels.items())), []).extend(columns.get(series_id, ()))
        answer = []
        for key, parts in merged.items():
            timestamps, values = samples(parts)
            if timestamps:
                answer.append(RawSeries(dict(key), timestamps, values))
        return answer

    async def matching(self, matchers: Sequence[Matcher]) -> dict[int, dict[str, str]]:
        """Series id → labels of every series matching all matchers, as of every write acknowledged before now."""
        tests = [(matcher.name, value_predicate(matcher)) for matcher in matchers]
        if all(test("") for _, test in tests):
            raise BadData("a selector must contain at least one matcher that does not match the empty string")
        await self._registry.refresh()
        index = self._registry.index
        candidates = self._candidates(matchers, tests)
        found: dict[int, dict[str, str]] = {}
        for series_id in candidates:
            series = index.get(series_id)
            if series is None:
                continue
            labels = series_labels(series.name, series.tags)
            if all(test(labels.get(label, "")) for label, test in tests):
                found[series_id] = labels
        return found

    def _candidates(self, matchers: Sequence[Matcher], tests: list[tuple[str, Callable[[str], bool]]]) -> Iterable[int]:
        """A superset of the matching series: the postings of the equalities, else the series of each name
        whose `__name__` passes the name's matchers."""
        index = self._registry.index
        name: str | None = None
        tags: list[str] = []
        for matcher in matchers:
            if matcher.op != "=" or not matcher.value:
                continue
            if matcher.name == NAME_LABEL:
                ours = our_name(matcher.value)
                if ours is None or (name is not None and ours != name):
                    return ()
                name = ours
            elif (tag := tag_of_label(matcher.name, matcher.value)) is not None:
                tags.append(tag)
        if name is not None or tags:
            return index.match(name, None, tags) or ()
        name_tests = [test for label, test in tests if label == NAME_LABEL]
        ids: set[int] = set()
        for one in index.names():
            if all(test(prometheus_name(one)) for test in name_tests):
                ids |= index.match(one) or set()
        return ids

    async def label_names(self, selectors: Sequence[Sequence[Matcher]]) -> list[str]:
        names: set[str] = set()
        for labels in await self._labels_of(selectors):
            names.update(labels)
        return sorted(names)

    async def label_values(self, label: str, selectors: Sequence[Sequence[Matcher]]) -> list[str]:
        if label == NAME_LABEL and not selectors:
            await self._registry.refresh()
            return sorted(prometheus_name(name) for name in self._registry.index.names())
        return sorted({labels[label] for labels in await self._labels_of(selectors) if label in labels})

    async def series(self, selectors: Sequence[Sequence[Matcher]]) -> list[dict[str, str]]:
        unique = {tuple(sorted(labels.items())) for labels in await self._labels_of(selectors)}
        return [dict(key) for key in sorted(unique)]

    async def _labels_of(self, selectors: Sequence[Sequence[Matcher]]) -> list[dict[str, str]]:
        """The label sets of the series any selector matches (every series without a selector)."""
        if not selectors:
            await self._registry.refresh()
            index = self._registry.index
            found: dict[int, dict[str, str]] = {}
            for name in index.names():
                for series_id in index.match(name) or ():
                    series = index.get(series_id)
                    if series is not None:
                        found[series_id] = series_labels(series.name, series.tags)
            return list(found.values())
        union: dict[int, dict[str, str]] = {}
        for matchers in selectors:
            union.update(await self.matching(matchers))
        return list(union.values())


def samples(parts: Sequence[Columns]) -> tuple[Sequence[int], Sequence[float]]:
    """The samples of one series from its buckets' columns: in time order, one per millisecond (Prometheus has
    no two samples of a series at one time; of points stored at the same millisecond, the last written wins)."""
    ordered = sorted((part for part in parts if len(part)), key=lambda part: part.millis[0])
    if all(before.millis[-1] < after.millis[0] for before, after in itertools.pairwise(ordered)):
        # PERF: the buckets of a series rarely overlap (only compaction's, briefly); joined as arrays, the 80
        # series of TSBS's cpu-max-all-8 (259k samples) took 0.05 s instead of 1.1 s merged point by point.
        millis, values = array("q"), array("d")
        for part in ordered:
            millis.extend(part.millis)
            values.extend(part.values)
        if len(set(millis)) == len(millis):
            return millis, values
    return _merged(ordered)


def _merged(parts: Sequence[Columns]) -> tuple[list[int], list[float]]:
    merged: Iterable[Any] = heapq.merge(*(zip(part.millis, part.seqs, part.values, strict=True) for part in parts))
    timestamps: list[int] = []
    values: list[float] = []
    for millis, _, value in merged:
        if timestamps and timestamps[-1] == millis:
            values[-1] = value
        else:
            timestamps.append(millis)
            values.append(value)
    return timestamps, values
