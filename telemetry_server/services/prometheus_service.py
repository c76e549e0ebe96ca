"""PrometheusService: the Prometheus HTTP API's reads: PromQL queries through the engine over our series, and
the label APIs from the series index. Answers are the JSON of Prometheus' `data`, wrapped in its envelope.

Query answers are cached like the other reads (services/cache_dependency.py): under the dependency of the
metric name every selector of the query names (read from its parse), or of any name. A write to a series the
query can read drops the answer everywhere.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from telemetry_server.ports import QueryCache
from telemetry_server.promql.ast import VectorSelector
from telemetry_server.promql.engine import QueryLimits, QueryResult, instant_query, range_query
from telemetry_server.promql.errors import BadData, PromQLError
from telemetry_server.promql.evaluator import selector_windows
from telemetry_server.promql.labels import NAME_LABEL, our_name
from telemetry_server.promql.parse import parse_query
from telemetry_server.promql.source import Matcher, RawSeries
from telemetry_server.services.bulkhead import Bulkhead, TimeBudget
from telemetry_server.services.cache_dependency import ANY_NAME, read_dependency
from telemetry_server.services.single_flight import SingleFlight

# The Prometheus release whose API this one answers as: Grafana reads it to choose the label APIs it calls.
PROMETHEUS_VERSION = "2.42.0"
BUILD_INFO = orjson.dumps(
    {
        "status": "success",
        "data": {
            "version": PROMETHEUS_VERSION,
            "revision": "telemetry-server",
            "branch": "",
            "buildUser": "",
            "buildDate": "",
            "goVersion": "",
        },
    }
)
# PERF: a query's dependency comes from its parse (tens of µs); dashboards repeat a few hundred texts.
DEPENDENCIES_REMEMBERED = 10_000


class PrometheusSeries(Protocol):
    """Series and their samples by label matchers (storage/bucket_series_source.py)."""

    async def select(
        self,
        matchers: Sequence[Matcher],
        start_ms: int,
        end_ms: int,
        max_series: int,
        max_points: int,
        time_limit: float | None,
    ) -> list[RawSeries]: ...
    async def label_names(self, selectors: Sequence[Sequence[Matcher]]) -> list[str]: ...
    async def label_values(self, label: str, selectors: Sequence[Sequence[Matcher]]) -> list[str]: ...
    async def series(self, selectors: Sequence[Sequence[Matcher]]) -> list[dict[str, str]]: ...


@dataclass(frozen=True, slots=True)
class InstantQuery:
    text: str
    time_ms: int

    def cache_key(self) -> str:
        return f"promql|i|{self.time_ms}|{self.text}"


@dataclass(frozen=True, slots=True)
class RangeQuery:
    text: str
    start_ms: int
    end_ms: int
    step_ms: int

    def cache_key(self) -> str:
        return f"promql|r|{self.start_ms}|{self.end_ms}|{self.step_ms}|{self.text}"


class _QuerySource:
    """The SeriesSource of one query: the store within the query's limits and time."""

    def __init__(self, store: PrometheusSeries, limits: QueryLimits, budget: TimeBudget) -> None:
        self._store = store
        self._limits = limits
        self._budget = budget
        self._points = 0

    async def select(self, matchers: Sequence[Matcher], start_ms: int, end_ms: int) -> list[RawSeries]:
        limits = self._limits
        found = await self._store.select(
            matchers, start_ms, end_ms, limits.max_series, limits.max_points - self._points, self._budget.left()
        )
        self._points += sum(len(series.timestamps) for series in found)
        return found


class PrometheusService:
    def __init__(
        self,
        store: PrometheusSeries,
        cache: QueryCache,
        limits: QueryLimits,
        bulkhead: Bulkhead,
        clock_ms: Callable[[], int],
    ) -> None:
        self._store = store
        self._cache = cache
        self._limits = limits
        self.clock_ms = clock_ms
        # Slots shared with the other heavy reads, so that a burst of dashboards cannot hold the pool writes need.
        self._bulkhead = bulkhead
        self._flights: SingleFlight[bytes] = SingleFlight()

    async def query(self, query: InstantQuery | RangeQuery, timeout_s: float | None) -> bytes:
        """The success envelope of a query's answer, as JSON (cached)."""
        key = query.cache_key()
        lookup = await self._cache.lookup(query_dependency(query.text), key)
        if lookup.value is not None:
            return lookup.value

        async def compute() -> bytes:
            result = await self._evaluate(query, timeout_s)
            body = envelope({"resultType": result.result_type, "result": result.result}, result.warnings)
            await self._cache.store(key, lookup, body)
            return body

        return await self._flights.do(key, compute)

    async def _evaluate(self, query: InstantQuery | RangeQuery, timeout_s: float | None) -> QueryResult:
        limits = self._limits

        async def run(budget: TimeBudget) -> QueryResult:
            left = budget.left() if timeout_s is None else min(budget.left(), timeout_s)
            bounded = QueryLimits(limits.max_series, limits.max_points, left)
            source = _QuerySource(self._store, bounded, budget)
            if isinstance(query, InstantQuery):
                return await instant_query(query.text, query.time_ms, source, bounded)
            return await range_query(query.text, query.start_ms, query.end_ms, query.step_ms, source, bounded)

        return await self._bulkhead.run(run)

    async def label_names(self, match: Sequence[str], limit: int | None = None) -> bytes:
        return envelope((await self._store.label_names(parse_selectors(match)))[:limit])

    async def label_values(self, label: str, match: Sequence[str], limit: int | None = None) -> bytes:
        return envelope((await self._store.label_values(label, parse_selectors(match)))[:limit])

    async def series(self, match: Sequence[str], limit: int | None = None) -> bytes:
        if not match:
            raise BadData("no match[] parameter provided")
        return envelope((await self._store.series(parse_selectors(match)))[:limit])

    async def metadata(self, metric: str | None, limit: int | None = None) -> bytes:
        """Every name, of type `unknown`: our metrics carry no type, help or unit."""
        names = await self._store.label_values(NAME_LABEL, ())
        if metric is not None:
            names = [name for name in names if name == metric]
        return envelope({name: [{"type": "unknown", "help": "", "unit": ""}] for name in names[:limit]})


@functools.lru_cache(maxsize=DEPENDENCIES_REMEMBERED)
def query_dependency(text: str) -> str:
    """What a query's answer depends on: the metric every selector names by `__name__="..."`, else any name (a
    query that does not parse reads nothing: it is refused before anything is cached)."""
    try:
        tree = parse_query(text)
    except PromQLError:
        return ANY_NAME
    names = set()
    for selector, _, _ in selector_windows(tree, 0, 0):
        named = [m.value for m in selector.matchers if m.name == NAME_LABEL and m.op == "=" and m.value]
        names.add(our_name(named[0]) if len(named) == 1 else None)
    if len(names) == 1 and None not in names:
        return read_dependency(next(iter(names)), ())
    return ANY_NAME


def envelope(data: Any, warnings: Sequence[str] = ()) -> bytes:
    body: dict[str, Any] = {"status": "success", "data": data}
    if warnings:
        body["warnings"] = list(warnings)
    return orjson.dumps(body)


def parse_selectors(texts: Sequence[str]) -> list[list[Matcher]]:
    """The matchers of each `match[]` series selector (`up{job="api"}`, `{__name__=~"cpu.*"}`)."""
    return [_selector(text) for text in texts]


def _selector(text: str) -> list[Matcher]:
    tree = parse_query(text)
    if not isinstance(tree, VectorSelector) or tree.offset_ms:
        raise BadData(f"invalid parameter 'match[]': {text[:64]!r} is not a series selector")
    return list(tree.matchers)
