"""Test doubles shared by the unit tests and bench/hot_path.py: in-memory backends an App is built on
(`telemetry_server.app.Backends`), an API key store, and a clock that moves only when told."""

from __future__ import annotations

import asyncio
import itertools
import operator
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime

from telemetry_server.auth.keys import ApiKey
from telemetry_server.errors import StorageUnavailable
from telemetry_server.models.metric import Metric, MetricInput
from telemetry_server.models.metric_query import MetricQuery, SortOrder
from telemetry_server.ports import UNCACHEABLE, Lookup

_COMPARE = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}


class InMemoryMetricStore:
    """A MetricStore over a dict. Set `failure` to make every call but `aclose` raise it."""

    def __init__(self) -> None:
        self.metrics: dict[str, Metric] = {}
        self.failure: BaseException | None = None
        self.indexes_ensured = 0
        self.closed = False
        self._ids = itertools.count(1)

    def _check(self) -> None:
        if self.failure is not None:
            raise self.failure

    async def insert(self, metrics: Sequence[MetricInput]) -> list[Metric]:
        self._check()
        # Ids of the store's form (models/point_id.py): 36 hex digits.
        stored = [Metric(f"{next(self._ids):036x}", m.name, m.tags, m.value, m.timestamp) for m in metrics]
        self.metrics.update((m.id, m) for m in stored)
        return stored

    async def find(self, query: MetricQuery, time_limit: float | None = None) -> list[Metric]:
        self._check()
        newest_first = query.order is SortOrder.DESC
        found = []
        for metric in self.metrics.values():
            if query.name is not None and metric.name != query.name:
                continue
            if not set(query.tags) <= set(metric.tags):
                continue
            if query.start is not None and metric.timestamp < query.start:
                continue
            if query.end is not None and metric.timestamp >= query.end:
                continue
            if not all(
                _COMPARE[op](metric.value, bound) for op, bound in query.values.bounds().items() if bound is not None
            ):
                continue
            if query.cursor is not None:
                position, after = (metric.timestamp, metric.id), (query.cursor.timestamp, query.cursor.id)
                if (position >= after) if newest_first else (position <= after):
                    continue
            found.append(metric)
        found.sort(key=lambda m: (m.timestamp, m.id), reverse=newest_first)
        return found[: query.limit]

    async def get(self, id_: str) -> Metric | None:
        self._check()
        return self.metrics.get(id_)

    async def replace(self, id_: str, metric: MetricInput) -> tuple[Metric, Metric] | None:
        self._check()
        before = self.metrics.get(id_)
        if before is None:
            return None
        after = replace(before, name=metric.name, tags=metric.tags, value=metric.value, timestamp=metric.timestamp)
        self.metrics[id_] = after
        return before, after

    async def delete(self, id_: str) -> Metric | None:
        self._check()
        return self.metrics.pop(id_, None)

    async def ping(self) -> None:
        self._check()

    async def ensure_indexes(self) -> None:
        self._check()
        self.indexes_ensured += 1

    async def aclose(self) -> None:
        self.closed = True


class UnreachableMetricStore(InMemoryMetricStore):
    """A store whose database never answers, as the Mongo adapter reports it."""

    def __init__(self) -> None:
        super().__init__()
        self.failure = StorageUnavailable("MongoDB is unreachable (test)")


class InMemoryQueryCache:
    """The shared (Redis) cache over a dict: an entry is dropped when a write touches its dependency key.

    `listen` plays the invalidation channel: live at once, until the app cancels it; each invalidation is
    delivered to the listener, numbered, before `invalidate` returns (while Redis is up).
    """

    def __init__(self) -> None:
        self.entries: dict[str, tuple[str, bytes]] = {}
        self.invalidations: list[list[str]] = []
        self.up = True
        self.closed = False
        self.listening = False
        self.published = 0
        self._listener: Callable[[int, list[str], bytes], None] | None = None

    async def lookup(self, dependency: str, query_key: str) -> Lookup:
        if not self.up:
            return UNCACHEABLE
        entry = self.entries.get(query_key)
        return Lookup(entry[1] if entry else None, b"1", dependency)

    async def store(self, query_key: str, lookup: Lookup, value: bytes) -> None:
        if lookup.generation and self.up:
            self.entries[query_key] = (lookup.dependency, value)

    async def invalidate(self, dependencies: Sequence[str], note: bytes = b"") -> bool:
        self.invalidations.append(list(dependencies))
        self.entries = {k: (d, v) for k, (d, v) in self.entries.items() if d not in dependencies}
        if not self.up:
            return False
        self.published += 1
        if self._listener is not None:
            self._listener(self.published, list(dependencies), note)
        return True

    async def listen(
        self, on_message: Callable[[int, list[str], bytes], None], on_state: Callable[[bool], None]
    ) -> None:
        self.listening = True
        self._listener = on_message
        on_state(True)
        try:
            await asyncio.Event().wait()
        finally:
            self.listening = False
            self._listener = None

    async def ping(self) -> bool:
        return self.up

    async def aclose(self) -> None:
        self.closed = True


class InMemoryTokenSource:
    """The shared rate-limit bucket: `tokens` in all (plenty by default). Set `failure` to make `take` raise it."""

    def __init__(self, tokens: int = 1_000_000_000) -> None:
        self.tokens = tokens
        self.failure: BaseException | None = None

    async def take(self, client: str, want: int) -> tuple[int, int]:
        if self.failure is not None:
            raise self.failure
        granted = min(want, self.tokens)
        self.tokens -= granted
        return granted, self.tokens


class InMemoryKeyStore:
    """A KeyStore over a dict, counting reads."""

    def __init__(self) -> None:
        self.keys: dict[str, ApiKey] = {}
        self.reads = 0
        self.failure: Exception | None = None  # raised by every read, as an unreachable database
        self.hang = False  # reads never answer

    async def add_if_absent(self, key: ApiKey) -> bool:
        if key.key_id in self.keys:
            return False
        self.keys[key.key_id] = key
        return True

    async def get(self, key_id: str) -> ApiKey | None:
        self.reads += 1
        if self.hang:
            await asyncio.Event().wait()
        if self.failure is not None:
            raise self.failure
        return self.keys.get(key_id)

    async def all_keys(self) -> list[ApiKey]:
        return list(self.keys.values())

    async def revoke(self, key_id: str, at: datetime) -> ApiKey | None:
        key = self.keys.get(key_id)
        if key is not None and key.revoked_at is None:
            key = self.keys[key_id] = replace(key, revoked_at=at)
        return key


class ManualClock:
    """A monotonic clock (seconds) that moves only when a test moves `now`."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
