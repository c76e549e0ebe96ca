"""MetricService: record, list, read, replace and delete metrics, keeping the cache truthful."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import orjson

from telemetry_server.errors import NotFound
from telemetry_server.models.metric import Metric, MetricInput
from telemetry_server.models.metric_query import Cursor, MetricQuery, is_object_id
from telemetry_server.ports import MetricStore, QueryCache


def utc_now() -> datetime:
    return datetime.now(UTC)


class MetricService:
    def __init__(self, store: MetricStore, cache: QueryCache, clock: Callable[[], datetime] = utc_now) -> None:
        self._store = store
        self._cache = cache
        self.clock = clock

    async def record(self, metrics: Sequence[MetricInput]) -> list[Metric]:
        stored = await self._store.insert(metrics)
        await self._cache.invalidate(sorted({m.name for m in metrics}))
        return stored

    async def list_json(self, query: MetricQuery) -> tuple[bytes, bool]:
        """The listing's JSON body, and whether it came from the cache."""
        key = query.cache_key()
        lookup = await self._cache.lookup(query.name, key)
        if lookup.value is not None:
            return lookup.value, True
        metrics = await self._store.find(query)
        last = metrics[-1] if len(metrics) == query.limit else None
        body = orjson.dumps(
            {
                "items": [m.to_json() for m in metrics],
                "next": Cursor(last.timestamp, last.id).encode() if last else None,
            }
        )
        await self._cache.store(key, lookup, body)
        return body, False

    async def get(self, id_: str) -> Metric:
        metric = await self._store.get(id_) if is_object_id(id_) else None
        if metric is None:
            raise NotFound(f"no metric with id {id_}")
        return metric

    async def replace(self, id_: str, metric: MetricInput) -> Metric:
        result = await self._store.replace(id_, metric) if is_object_id(id_) else None
        if result is None:
            raise NotFound(f"no metric with id {id_}")
        before, after = result
        await self._cache.invalidate(sorted({before.name, after.name}))
        return after

    async def delete(self, id_: str) -> None:
        deleted = await self._store.delete(id_) if is_object_id(id_) else None
        if deleted is None:
            raise NotFound(f"no metric with id {id_}")
        await self._cache.invalidate([deleted.name])
