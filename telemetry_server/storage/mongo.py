"""MongoMetricStore: metrics in MongoDB through pymongo's native async client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext
from contextvars import ContextVar
from datetime import datetime
from typing import Any

import pymongo
from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel, ReturnDocument
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    ExecutionTimeout,
    PyMongoError,
    ServerSelectionTimeoutError,
    WriteConcernError,
)
from pymongo.monitoring import ConnectionCheckedOutEvent, ConnectionCheckOutFailedEvent, ConnectionPoolListener

from telemetry_server.config import Settings
from telemetry_server.errors import QueryTimedOut, StorageUnavailable
from telemetry_server.models.metric import Metric, MetricInput
from telemetry_server.models.metric_query import MetricQuery, SortOrder
from telemetry_server.models.value_range import ValueRange

Document = dict[str, Any]

INDEXES = [
    IndexModel([("name", ASCENDING), ("timestamp", DESCENDING)], name="name_timestamp"),
    IndexModel([("tags", ASCENDING), ("timestamp", DESCENDING)], name="tags_timestamp"),
    IndexModel([("timestamp", DESCENDING)], name="timestamp"),
]


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
    settings: Settings, observe_pool_wait_ms: Callable[[float], None] | None = None
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
        event_listeners=[PoolWaitListener(observe_pool_wait_ms)] if observe_pool_wait_ms else [],
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


def build_filter(query: MetricQuery) -> Document:
    """The MongoDB filter for a listing, from typed fields only: no user string becomes an operator."""
    clauses: list[Document] = []
    if query.name is not None:
        clauses.append({"name": query.name})
    if query.tags:
        clauses.append({"tags": {"$all": list(query.tags)}})
    window = time_window(query.start, query.end)
    if window:
        clauses.append({"timestamp": window})
    if query.values.bounded:
        clauses.append({"value": value_clause(query.values)})
    if query.cursor is not None:
        past = "$lt" if query.order is SortOrder.DESC else "$gt"
        at, oid = query.cursor.timestamp, ObjectId(query.cursor.id)
        clauses.append({"$or": [{"timestamp": {past: at}}, {"timestamp": at, "_id": {past: oid}}]})
    if not clauses:
        return {}
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def value_clause(values: ValueRange) -> Document:
    return {f"${op}": bound for op, bound in values.bounds().items() if bound is not None}


def to_document(metric: MetricInput, id_: ObjectId | None = None) -> Document:
    doc: Document = {"name": metric.name, "tags": list(metric.tags), "value": metric.value}
    doc["timestamp"] = metric.timestamp
    if id_ is not None:
        doc["_id"] = id_
    return doc


def to_metric(doc: Document) -> Metric:
    return Metric(str(doc["_id"]), doc["name"], tuple(doc.get("tags", ())), doc["value"], doc["timestamp"])


class MongoMetricStore:
    def __init__(self, client: AsyncMongoClient[Document], database: str) -> None:
        self._client = client
        self._metrics = client[database]["metrics"]

    async def ensure_indexes(self) -> None:
        async with unavailable_when_unreachable("creating indexes"):
            await self._metrics.create_indexes(INDEXES)

    async def ping(self) -> None:
        async with unavailable_when_unreachable("ping"):
            await self._client.admin.command("ping")

    async def insert(self, metrics: Sequence[MetricInput]) -> list[Metric]:
        docs = [to_document(m, ObjectId()) for m in metrics]
        async with unavailable_when_unreachable("insert"):
            if len(docs) == 1:
                await self._metrics.insert_one(docs[0])
            else:
                await self._metrics.insert_many(docs, ordered=True)
        return [to_metric(doc) for doc in docs]

    async def find(self, query: MetricQuery, time_limit: float | None = None) -> list[Metric]:
        direction = DESCENDING if query.order is SortOrder.DESC else ASCENDING
        cursor = (
            self._metrics.find(build_filter(query))
            .sort([("timestamp", direction), ("_id", direction)])
            .limit(query.limit)
        )
        async with unavailable_when_unreachable("find", time_limit):
            return [to_metric(doc) async for doc in cursor]

    async def get(self, id_: str) -> Metric | None:
        async with unavailable_when_unreachable("find by id"):
            doc = await self._metrics.find_one({"_id": ObjectId(id_)})
        return None if doc is None else to_metric(doc)

    async def replace(self, id_: str, metric: MetricInput) -> tuple[Metric, Metric] | None:
        """Replace and return (before, after), or None when there is no such metric."""
        async with unavailable_when_unreachable("replace"):
            before = await self._metrics.find_one_and_replace(
                {"_id": ObjectId(id_)}, to_document(metric), return_document=ReturnDocument.BEFORE
            )
        if before is None:
            return None
        return to_metric(before), Metric(id_, metric.name, metric.tags, metric.value, metric.timestamp)

    async def delete(self, id_: str) -> Metric | None:
        async with unavailable_when_unreachable("delete"):
            doc = await self._metrics.find_one_and_delete({"_id": ObjectId(id_)})
        return None if doc is None else to_metric(doc)

    async def aclose(self) -> None:
        await self._client.close()
