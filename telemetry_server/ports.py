"""What the services need from storage, as protocols: the adapters in `storage/` and test doubles fit them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from telemetry_server.auth.keys import ApiKey
from telemetry_server.models.aggregate_rows import Row
from telemetry_server.models.aggregation import AggregateQuery
from telemetry_server.models.metric import Metric, MetricInput
from telemetry_server.models.metric_query import MetricQuery


@dataclass(frozen=True, slots=True)
class Lookup:
    """A cache read. After a miss it goes back with the value to store: `generation` (empty: don't store in
    Redis), `dependency` the key the value depends on (services/cache_dependency.py), `local_version` the L1's
    version of that key at lookup time (None: don't store in L1), so a value read before a write is never
    kept after it."""

    value: bytes | None
    generation: bytes
    dependency: str = "*"
    local_version: int | None = None


UNCACHEABLE = Lookup(None, b"")


class MetricStore(Protocol):
    async def insert(self, metrics: Sequence[MetricInput]) -> list[Metric]: ...
    async def find(self, query: MetricQuery, time_limit: float | None = None) -> list[Metric]: ...
    async def get(self, id_: str) -> Metric | None: ...
    async def replace(self, id_: str, metric: MetricInput) -> tuple[Metric, Metric] | None: ...
    async def delete(self, id_: str) -> Metric | None: ...
    async def ping(self) -> None: ...
    async def ensure_indexes(self) -> None: ...
    async def aclose(self) -> None: ...


class QueryCache(Protocol):
    async def lookup(self, dependency: str, query_key: str) -> Lookup: ...
    async def store(self, query_key: str, lookup: Lookup, value: bytes) -> None: ...
    async def invalidate(self, dependencies: Sequence[str]) -> None: ...
    async def ping(self) -> bool: ...
    async def aclose(self) -> None: ...


class SharedCache(Protocol):
    """The cache every worker shares (Redis) and its channel to every worker's L1: `invalidate` publishes the keys
    written, with the writer's `note` (False: held for later, without it); `listen` delivers each message as
    (number, keys, note), numbered in the order they were published."""

    async def lookup(self, dependency: str, query_key: str) -> Lookup: ...
    async def store(self, query_key: str, lookup: Lookup, value: bytes) -> None: ...
    async def invalidate(self, dependencies: Sequence[str], note: bytes = b"") -> bool: ...
    async def listen(
        self, on_message: Callable[[int, list[str], bytes], None], on_state: Callable[[bool], None]
    ) -> None: ...
    async def ping(self) -> bool: ...
    async def aclose(self) -> None: ...


class KeyStore(Protocol):
    """API keys by id; `add_if_absent` is False when the id is already taken."""

    async def add_if_absent(self, key: ApiKey) -> bool: ...
    async def get(self, key_id: str) -> ApiKey | None: ...
    async def all_keys(self) -> list[ApiKey]: ...
    async def revoke(self, key_id: str, at: datetime) -> ApiKey | None: ...


class AggregationStore(Protocol):
    """`time_limit` (seconds) bounds the engine's work as well as the wait: past it, QueryTimedOut."""

    async def aggregate(self, query: AggregateQuery, max_rows: int, time_limit: float | None = None) -> list[Row]: ...
    async def metric_names(self) -> list[str]: ...


class SeriesCatalog(Protocol):
    """The metric names and tags held, for autocompletion: sorted, each once, at most `limit`."""

    async def names(self, prefix: str, limit: int) -> list[str]: ...
    async def tags(self, name: str, prefix: str, limit: int) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class LogWindow:
    """What the change log holds: its oldest entry's id (None: empty), the last id it gave, and whether it
    has ever dropped entries (MAXLEN): then what came before the oldest entry is gone."""

    oldest: str | None
    last: str
    trimmed: bool


class ChangeLog(Protocol):
    """The ordered log of acknowledged writes every worker of every instance reads (live streams); entry ids
    are `<milliseconds>-<sequence>` and increase."""

    async def append(self, entries: Sequence[bytes]) -> None: ...
    async def read_after(self, after: str, count: int, block_seconds: float) -> list[tuple[str, bytes]]: ...
    async def replay(self, start: str, until: str, count: int) -> list[tuple[str, bytes]]: ...
    async def window(self) -> LogWindow: ...
    async def issue_token(self, key_id: str, seconds: int) -> str: ...
    async def redeem_token(self, token: str) -> str | None: ...


class StreamTokens(Protocol):
    """Short-lived stream tokens: the key id a token was issued to, while it lasts (None: unknown or expired)."""

    async def redeem_token(self, token: str) -> str | None: ...
