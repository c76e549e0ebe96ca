"""MongoAggregationStore: aggregation pipelines for the query executor, and the raw points of its fallback."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.errors import OperationFailure

from telemetry_server.models.aggregate_rows import Point, Row, rank_rows
from telemetry_server.models.aggregation import AggregateFn, AggregateQuery
from telemetry_server.models.metric_query import SortOrder
from telemetry_server.ports import OperatorUnsupported
from telemetry_server.storage.mongo import Document, time_window, unavailable_when_unreachable, value_clause

# What engines answer for an operator they do not know or implement: MongoDB's InvalidPipelineOperator
# (168), unknown group operator (15952), unknown expression in $project/$set (31325), unknown stage
# (40324), NotImplemented (238, FerretDB), CommandNotSupported (115).
_UNSUPPORTED_CODES = frozenset({115, 168, 238, 15952, 31325, 40324})
_UNSUPPORTED_WORDS = ("not implemented", "unrecognized", "unknown", "not supported", "unsupported")
_BUCKET_UNITS = {"m": "minute", "h": "hour", "d": "day"}


def required_operators(query: AggregateQuery) -> frozenset[str]:
    """The operators a query's pipeline uses beyond `$match`, `$sort` and `$limit`.

    Accumulators are listed too: FerretDB, for one, lacks `$avg`, `$min` and `$max` in `$group`.
    """
    needed = {"$group", next(iter(_accumulator(query.fn)))}
    if query.bucket is not None:
        needed.add("$dateTrunc")
    if query.group_by not in (None, "name"):
        needed.add("$unwind")
    return frozenset(needed)


def build_match(query: AggregateQuery) -> Document:
    """The filter, from typed fields only; a name prefix is a range, so it uses the name index."""
    match: Document = {}
    if query.name is not None:
        match["name"] = query.name
    elif query.name_prefix is not None:
        prefix = query.name_prefix
        match["name"] = {"$gte": prefix, "$lt": prefix[:-1] + chr(ord(prefix[-1]) + 1)}
    if query.tags:
        match["tags"] = {"$all": list(query.tags)}
    window = time_window(query.start, query.end)
    if window:
        match["timestamp"] = window
    if query.values.bounded:
        match["value"] = value_clause(query.values)
    return match


def build_pipeline(query: AggregateQuery, max_rows: int) -> list[Document]:
    stages: list[Document] = [{"$match": build_match(query)}]
    key: Document = {}
    if query.bucket is not None:
        unit = _BUCKET_UNITS[query.bucket.unit.value]
        trunc = {"date": "$timestamp", "unit": unit, "binSize": query.bucket.size, "timezone": query.tz}
        key["b"] = {"$dateTrunc": trunc}
    if query.group_by == "name":
        key["g"] = "$name"
    elif query.group_by is not None:
        tag_prefix = re.escape(f"{query.group_by}:")
        stages += [{"$unwind": "$tags"}, {"$match": {"tags": {"$regex": f"^{tag_prefix}"}}}]
        key["g"] = "$tags"
    stages.append({"$group": {"_id": key or None, "v": _accumulator(query.fn), "n": {"$sum": 1}}})
    if query.fn.percentile is not None:
        stages.append({"$set": {"v": {"$arrayElemAt": ["$v", 0]}}})
    if query.top is not None:
        direction = -1 if query.order is SortOrder.DESC else 1
        stages += [{"$sort": {"v": direction, "_id.g": 1}}, {"$limit": query.top}]
    else:
        stages += [{"$sort": {"_id.b": 1, "_id.g": 1}}, {"$limit": max_rows + 1}]
    return stages


def _accumulator(fn: AggregateFn) -> Document:
    percentile = fn.percentile
    if percentile is not None:
        return {"$percentile": {"input": "$value", "p": [percentile / 100], "method": "approximate"}}
    if fn is AggregateFn.COUNT:
        return {"$sum": 1}
    return {f"${fn.value}": "$value"}


def to_row(doc: Document, query: AggregateQuery) -> Row:
    key = doc["_id"] or {}
    group = key.get("g")
    if group is not None and query.group_by != "name":
        group = group[len(query.group_by or "") + 1 :]
    return Row(doc["v"], doc["n"], key.get("b"), group)


def unsupported_operators(exc: OperationFailure, candidates: Iterable[str]) -> frozenset[str] | None:
    """The operators an engine's refusal names (all candidates if it names none); None if not a refusal."""
    message = str(exc.details.get("errmsg", exc) if exc.details else exc)
    if exc.code not in _UNSUPPORTED_CODES and not any(w in message.lower() for w in _UNSUPPORTED_WORDS):
        return None
    named = frozenset(op for op in candidates if op in message)
    return named or frozenset(candidates)


class MongoAggregationStore:
    """Shares the worker's client with MongoBucketStore, which owns (and closes) it."""

    def __init__(self, client: AsyncMongoClient[Document], database: str) -> None:
        self._metrics = client[database]["metrics"]

    def operators(self, query: AggregateQuery) -> frozenset[str]:
        return required_operators(query)

    async def aggregate(self, query: AggregateQuery, max_rows: int, time_limit: float | None = None) -> list[Row]:
        pipeline = build_pipeline(query, max_rows)
        try:
            async with unavailable_when_unreachable("aggregation", time_limit):
                cursor = await self._metrics.aggregate(pipeline)
                docs = [doc async for doc in cursor]
        except OperationFailure as exc:
            operators = unsupported_operators(exc, required_operators(query) - {"$group"})
            if operators is None:
                raise
            raise OperatorUnsupported(operators, str(exc)) from exc
        rows = [to_row(doc, query) for doc in docs]
        return rank_rows(rows, query) if query.fn is AggregateFn.COUNT else rows

    async def points(self, query: AggregateQuery, max_points: int, time_limit: float | None = None) -> list[Point]:
        """At most `max_points + 1` points (one more than allowed tells the caller there are too many)."""
        projection: dict[str, Any] = {"_id": 0, "timestamp": 1, "value": 1}
        if query.group_by == "name":
            projection["name"] = 1
        elif query.group_by is not None:
            projection["tags"] = 1
        cursor = self._metrics.find(build_match(query), projection).limit(max_points + 1)
        async with unavailable_when_unreachable("fetch of points", time_limit):
            return [
                Point(doc["timestamp"], doc["value"], doc.get("name", ""), tuple(doc.get("tags", ())))
                async for doc in cursor
            ]

    async def metric_names(self) -> list[str]:
        async with unavailable_when_unreachable("distinct names"):
            names: list[str] = await self._metrics.distinct("name")
        return names
