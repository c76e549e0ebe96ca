"""What every MongoDB adapter shares: the client (one pool per worker), its error mapping, and query clauses."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext
from contextvars import ContextVar
from datetime import datetime
from typing import Any

import pymongo
from bson import ObjectId
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    ExecutionTimeout,
    PyMongoError,
    ServerSelectionTimeoutError,
    WriteConcernError,
)
from pymongo.monitoring import (
    CommandListener,
    ConnectionCheckedOutEvent,
    ConnectionCheckOutFailedEvent,
    ConnectionPoolListener,
)

from telemetry_server.config import Settings
from telemetry_server.errors import QueryTimedOut, StorageUnavailable
from telemetry_server.models.value_range import ValueRange

Document = dict[str, Any]


class PoolWaitListener(ConnectionPoolListener):
    """Reports how long each request waited for a pooled connection (pool waits show an undersized pool)."""

    def __init__(self, observe_ms: Callable[[float], None]) -> None:
        self._observe_ms = observe_ms

    def connection_checked_out(self, event: ConnectionCheckedOutEvent) -> None:
        self._observe_ms((event.duration or 0.0) * 1000)

    def connection_check_out_failed(self, event: ConnectionCheckOutFailedEvent) -> None:
        self._observe_ms((event.duration or 0.0) * 1000)

    # The rest of the pool's life is not measured.
    def pool_created(self, event: Any) -> None: ...
    def pool_ready(self, event: Any) -> None: ...
    def pool_cleared(self, event: Any) -> None: ...
    def pool_closed(self, event: Any) -> None: ...
    def connection_created(self, event: Any) -> None: ...
    def connection_ready(self, event: Any) -> None: ...
    def connection_closed(self, event: Any) -> None: ...
    def connection_check_out_started(self, event: Any) -> None: ...
    def connection_checked_in(self, event: Any) -> None: ...


def create_mongo_client(
    settings: Settings,
    observe_pool_wait_ms: Callable[[float], None] | None = None,
    command_listeners: Sequence[CommandListener] = (),
) -> AsyncMongoClient[Document]:
    """One client (and so one pool) per worker, created in the lifespan after the fork."""
    assert settings.mongo_uri is not None
    timeout = settings.mongo_timeout_ms
    return AsyncMongoClient(
        settings.mongo_uri,
        appname="telemetry-server",
        tz_aware=True,
        maxPoolSize=settings.mongo_pool_size,
        serverSelectionTimeoutMS=timeout,
        connectTimeoutMS=timeout,
        # A live server may take longer than the selection timeout to store a large batch.
        socketTimeoutMS=timeout * 10,
        waitQueueTimeoutMS=timeout,
        # Every write (metrics and keys) waits for this before it is acknowledged; these keywords win over
        # any w/journal given in MONGO_URI, so the durability promise is decided in one place.
        w=settings.mongo_write_concern,
        journal=settings.mongo_journal,
        # pymongo's default, said here because inserts rely on it: a write cut off by a lost connection or a
        # failover is sent once more, to the new primary (storage/mongo.py insert_idempotent).
        retryWrites=True,
        event_listeners=[
            *command_listeners,
            *([PoolWaitListener(observe_pool_wait_ms)] if observe_pool_wait_ms else []),
        ],
    )


_TIME_LIMITED: ContextVar[bool] = ContextVar("mongo_time_limited", default=False)


@asynccontextmanager
async def unavailable_when_unreachable(action: str, time_limit: float | None = None) -> AsyncIterator[None]:
    """Transport failures become 503s; a reply the server did give (a real fault) stays a 500.

    With a `time_limit` (seconds), every command in the block is sent the time left as `maxTimeMS`, so the
    engine stops work nobody will wait for, and the driver stops waiting at the limit even for an engine that
    ignores it (pymongo's client-side operation timeout); running out of it is a QueryTimedOut (503), also in
    a block nested in this one (an adapter's own call, made on behalf of a time-limited read).
    """
    limited = time_limit is not None or _TIME_LIMITED.get()
    token = _TIME_LIMITED.set(limited)
    try:
        with _time_limited(time_limit):
            yield
    except ExecutionTimeout as exc:
        raise QueryTimedOut(f"MongoDB stopped the {action} at its time limit") from exc
    except ServerSelectionTimeoutError as exc:
        raise StorageUnavailable(f"MongoDB is unreachable ({action})") from exc
    except (WriteConcernError, BulkWriteError) as exc:
        # Stored on the primary perhaps, but not confirmed as MONGO_WRITE_CONCERN asks (a replica set that
        # lost its majority, a wtimeout): not acknowledged, and worth retrying, as any write of unknown outcome.
        if isinstance(exc, WriteConcernError) or _only_write_concern_failed(exc):
            raise StorageUnavailable(f"MongoDB did not confirm the {action} at its write concern") from exc
        raise
    except PyMongoError as exc:
        if limited and exc.timeout:
            raise QueryTimedOut(f"MongoDB did not answer the {action} within its time limit") from exc
        if isinstance(exc, ConnectionFailure):
            raise StorageUnavailable(f"MongoDB is unreachable ({action})") from exc
        raise
    finally:
        _TIME_LIMITED.reset(token)


def _only_write_concern_failed(exc: BulkWriteError) -> bool:
    details = exc.details or {}
    return bool(details.get("writeConcernErrors")) and not details.get("writeErrors")


_DUPLICATE_KEY = 11000


def already_there(exc: BulkWriteError) -> list[int] | None:
    """The positions of the documents an unordered insert found already stored (duplicate keys); None when
    anything else failed, a write concern included: then the insert is not known to be stored."""
    details = exc.details or {}
    errors = details.get("writeErrors", [])
    if details.get("writeConcernErrors") or any(error.get("code") != _DUPLICATE_KEY for error in errors):
        return None
    return [error["index"] for error in errors]


async def insert_idempotent(collection: AsyncCollection[Document], docs: list[Document]) -> None:
    """Insert `docs` so that a retry never stores one twice. Each carries its `_id` before the first attempt, so
    a retry of the same documents (pymongo's retryable write after a lost connection or a failover, which a
    server that kept no record of the first attempt runs again) meets the ones stored as duplicate keys, and
    stores only the rest: a collection whose only unique index is `_id` reads them as already there."""
    for doc in docs:
        doc.setdefault("_id", ObjectId())
    try:
        await collection.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        if already_there(exc) is None:
            raise


_SHORTEST_LIMIT_SECONDS = 0.001  # pymongo.timeout(0) would mean no limit at all


def _time_limited(seconds: float | None) -> AbstractContextManager[None]:
    if seconds is None:
        return nullcontext()
    return pymongo.timeout(max(seconds, _SHORTEST_LIMIT_SECONDS))


def time_window(start: datetime | None, end: datetime | None) -> Document:
    """The half-open window `start <= timestamp < end`; empty when both ends are open."""
    window: Document = {}
    if start is not None:
        window["$gte"] = start
    if end is not None:
        window["$lt"] = end
    return window


def value_clause(values: ValueRange) -> Document:
    return {f"${op}": bound for op, bound in values.bounds().items() if bound is not None}
