"""QueryService: the one executor behind `GET /metrics/aggregate` and `GET /query?prompt=`.

An aggregate is computed by the aggregation store (bucket summaries, and the points of the buckets they
cannot answer), inside the query bulkhead and its time limit. Results are cached under the query's normal form.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import orjson

from telemetry_server.errors import (
    PromptNotUnderstood,
    QueryTooLarge,
    ValidationFailed,
)
from telemetry_server.models.aggregate_rows import Row
from telemetry_server.models.aggregation import AggregateQuery
from telemetry_server.models.metric_query import MetricQuery
from telemetry_server.models.timestamps import utc_now
from telemetry_server.ports import AggregationStore, MetricStore, QueryCache
from telemetry_server.prompt.grammar import parse_prompt
from telemetry_server.prompt.model import ParsedPrompt, PromptContext
from telemetry_server.prompt.names import index_names
from telemetry_server.prompt.plugin import PromptPlugin, PromptRequest, query_from_url
from telemetry_server.prompt.rendering import equivalent, interpretation
from telemetry_server.services.bulkhead import Bulkhead, TimeBudget
from telemetry_server.services.cache_dependency import read_dependency
from telemetry_server.services.single_flight import SingleFlight

log = logging.getLogger("telemetry_server.query")

MAX_ROWS = 10_000
# PERF: a typo prompt costs 1.0 ms of CPU at 2,000 names, 3.3 ms at 10k, 12 ms at 100k, plus ~2 ms at 100k
# to find the names' index (python -m bench.name_match --names 2000,10000,100000); a thread hop ~0.1 ms.
# In a thread, 20 typo prompts at 100k names delayed a 1 ms sleep on the loop by 7 ms (median; the GIL's
# 5 ms switch interval), 12 ms at most; inline each would hold it 12 ms.
INLINE_PROMPT_NAMES = 5_000  # more names than this: prompts are read in a thread, off the event loop


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """An answer's rows and stats as the JSON the cache holds (`{"rows": [...], "stats": {...}}`): placed into
    each response as they are, so a cache hit neither decodes nor re-encodes them.

    PERF: a cached aggregate of 24 rows costs ~18 µs of Python instead of ~27 µs, of 1000 rows ~30 µs instead
    of ~370 µs (service call and the route's orjson.dumps, CPU time, best of 7).
    """

    rows: orjson.Fragment
    stats: orjson.Fragment

    @staticmethod
    def body(rows: list[Any], stats: dict[str, Any]) -> bytes:
        return orjson.dumps({"rows": rows, "stats": stats})

    @classmethod
    def from_body(cls, body: bytes) -> CachedAnswer:
        # Inside a JSON string a quote is always escaped, so `,"stats":` can only be a key; no row has that key,
        # and the stats are last.
        boundary = body.rindex(_STATS_KEY)
        return cls(
            orjson.Fragment(body[len(_ROWS_KEY) : boundary]), orjson.Fragment(body[boundary + len(_STATS_KEY) : -1])
        )


_ROWS_KEY = b'{"rows":'
_STATS_KEY = b',"stats":'


class QueryService:
    def __init__(
        self,
        aggregations: AggregationStore,
        metrics: MetricStore,
        cache: QueryCache,
        *,
        clock: Callable[[], datetime] = utc_now,
        plugin: PromptPlugin | None = None,
        max_limit: int = 1000,
        concurrency: int = 4,
        timeout_seconds: float = 5.0,
    ) -> None:
        # Heavy questions cannot starve the pool that writes and listings share, and one that runs out of
        # time is a 503 to retry (its work stopped in the engine too), not a hung request.
        self._bulkhead = Bulkhead(concurrency, timeout_seconds, "the query", "narrow the window or retry")
        self._aggregations = aggregations
        self._metrics = metrics
        self._cache = cache
        self.clock = clock
        self._plugin = plugin
        self._max_limit = max_limit
        self._flights: SingleFlight[bytes] = SingleFlight()  # a burst of one question makes one query
        self._names: tuple[str, ...] = ()
        self._names_flight: SingleFlight[tuple[str, ...]] = SingleFlight()

    @property
    def bulkhead(self) -> Bulkhead:
        """The slots of heavy reads, for other kinds of question to share (services/prometheus_service.py)."""
        return self._bulkhead

    async def aclose(self) -> None:
        """Close the prompt parser behind the rules, when it holds something to close (a connection pool)."""
        close = getattr(self._plugin, "aclose", None)
        if close is not None:
            await close()

    async def aggregate(self, query: AggregateQuery) -> dict[str, Any]:
        """`{query, rows, stats, took_ms, cached}`; rows and stats are the cached JSON, spliced in as it is."""
        started = time.perf_counter()
        answer, cached = await self._run(query)
        return {
            "query": query.to_json(),
            "rows": answer.rows,
            "stats": answer.stats,
            "took_ms": _elapsed(started),
            "cached": cached,
        }

    async def ask(self, prompt: str, tz: str) -> dict[str, Any]:
        """`{prompt, interpretation, equivalent, results, took_ms, cached, stats}`."""
        started = time.perf_counter()
        parsed = await self._parse(prompt, tz)
        if isinstance(parsed.query, MetricQuery):
            answer, cached = await self._list(parsed.query)
        else:
            answer, cached = await self._run(parsed.query)
        return {
            "prompt": prompt,
            "interpretation": interpretation(parsed, tz),
            "equivalent": equivalent(parsed),
            "results": answer.rows,
            "took_ms": _elapsed(started),
            "cached": cached,
            "stats": answer.stats,
        }

    async def _run(self, query: AggregateQuery) -> tuple[CachedAnswer, bool]:
        key = query.cache_key()
        lookup = await self._cache.lookup(read_dependency(query.name, query.tags), key)
        if lookup.value is not None:
            return CachedAnswer.from_body(lookup.value), True

        async def compute() -> bytes:
            rows, stats = await self._bounded(query)
            if not rows and query.bucket is None and query.group_by is None:
                rows = [Row(0 if query.fn.value == "count" else None, 0)]
            body = CachedAnswer.body([row.to_json() for row in rows], stats)
            await self._cache.store(key, lookup, body)
            return body

        return CachedAnswer.from_body(await self._flights.do(key, compute)), False

    async def _bounded(self, query: AggregateQuery) -> tuple[list[Row], dict[str, Any]]:
        return await self._bulkhead.run(lambda budget: self._execute(query, budget))

    async def _execute(self, query: AggregateQuery, budget: TimeBudget) -> tuple[list[Row], dict[str, Any]]:
        rows = await self._aggregations.aggregate(query, MAX_ROWS, budget.left())
        _check_rows(rows)
        return rows, {"path": "server"}

    async def _list(self, query: MetricQuery) -> tuple[CachedAnswer, bool]:
        key = "prompt-listing|" + query.cache_key()
        lookup = await self._cache.lookup(read_dependency(query.name, query.tags), key)
        if lookup.value is not None:
            return CachedAnswer.from_body(lookup.value), True

        async def compute() -> bytes:
            metrics = await self._bulkhead.run(lambda budget: self._metrics.find(query, budget.left()))
            stats = {"path": "server", "operators": {"find": "server"}}
            body = CachedAnswer.body([m.to_json() for m in metrics], stats)
            await self._cache.store(key, lookup, body)
            return body

        return CachedAnswer.from_body(await self._flights.do(key, compute)), False

    async def _parse(self, prompt: str, tz: str) -> ParsedPrompt:
        return await self._parse_with(prompt, tz, await self._known_names())

    async def _known_names(self) -> tuple[str, ...]:
        """The names this worker's series index holds now. A prompt read against older names can be read
        wrongly rather than refused ("top 5 <new metric>" grouped by an unknown tag), so it never is; the names
        come from memory, and only a changed list is indexed again (in a thread: tens of ms at 100k names)."""
        names = tuple(await self._aggregations.metric_names())
        if names != self._names:
            await self._names_flight.do("names", lambda: self._index_names(names))
        return self._names

    async def _index_names(self, names: tuple[str, ...]) -> tuple[str, ...]:
        await asyncio.to_thread(index_names, names)  # remembered: the rules find it by these names
        self._names = names
        return names

    async def _parse_with(self, prompt: str, tz: str, names: tuple[str, ...]) -> ParsedPrompt:
        reading = (prompt, self.clock(), tz, names, self._max_limit)
        if len(names) > INLINE_PROMPT_NAMES:
            # Against many names the rules cost milliseconds of CPU (a typo is aligned to thousands of names,
            # and finding the names' index hashes them all), which no other request should wait for.
            context, read = await asyncio.to_thread(_read_rules, *reading)
        else:
            context, read = _read_rules(*reading)
        rules = read if isinstance(read, ParsedPrompt) else None
        error = read if isinstance(read, PromptNotUnderstood) else None
        if self._plugin is not None:
            chosen = await self._ask_plugin(PromptRequest(prompt, context, rules, error))
            if chosen is not None:
                return chosen
        if rules is None:
            assert error is not None
            raise error
        return rules

    async def _ask_plugin(self, request: PromptRequest) -> ParsedPrompt | None:
        """The plugin's reading, or None to keep the rules' (also when the plugin fails: logged, not fatal)."""
        assert self._plugin is not None
        try:
            answer = self._plugin(request)
            if inspect.isawaitable(answer):
                answer = await answer
            if isinstance(answer, str):
                return query_from_url(answer, request.context)
            if answer is None or isinstance(answer, ParsedPrompt):
                return answer if answer is None or answer.parser != "rules" else replace(answer, parser="plugin")
            log.warning("QUERY_PARSER returned %s; using the rules", type(answer).__name__)
        except ValidationFailed as exc:
            log.warning("QUERY_PARSER gave an invalid query (%s); using the rules", exc.detail)
        except Exception:
            log.exception("QUERY_PARSER failed; using the rules")
        return None


def _read_rules(
    prompt: str, now: datetime, tz: str, names: tuple[str, ...], max_limit: int
) -> tuple[PromptContext, ParsedPrompt | PromptNotUnderstood]:
    """The prompt's context and the rules' reading of it, or why they do not understand it (pure CPU)."""
    context = PromptContext(now, tz, names, max_limit)
    try:
        return context, parse_prompt(prompt, context)
    except PromptNotUnderstood as exc:
        return context, exc


def _check_rows(rows: list[Row]) -> None:
    if len(rows) > MAX_ROWS:
        raise QueryTooLarge(f"more than {MAX_ROWS} rows: use a larger bucket, a narrower window, or top")


def _elapsed(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
