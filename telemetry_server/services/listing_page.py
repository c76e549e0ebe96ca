"""A cached newest-first listing page that writes update in place instead of dropping, exactly or not at all.

A page holds the newest matching points of its query, in the database's order, a few more than it shows (the
spares absorb a delete), and whether it holds every matching point. A write's changed points are applied to it:
a point it admits enters, a point it held leaves; whenever the page cannot tell for certain what the database
now answers, `apply` says so and the page is dropped: a dropped page costs a miss, a wrong one is a bug.

Only timestamps order points here. The database orders ties on the timestamp by id, in a form that is its own
business, so a change whose timestamp ties a held point's is not placed but refused (the page is dropped).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from telemetry_server.models.metric import Metric
from telemetry_server.models.metric_query import Cursor, MetricQuery, SortOrder
from telemetry_server.models.timestamps import format_timestamp
from telemetry_server.models.value_range import ValueRange

# What a held point costs beyond its JSON (the ListedPoint, its id and timestamp strings, its float; name and tags
# are shared with the series index), rounded up, so that the L1's byte bound bounds its memory: tracemalloc saw
# 28.1 KB for a page of 58 points, counted as 33.7 KB with this.
POINT_OVERHEAD_BYTES = 300
# Points held beyond the page's limit, read with it: a delete of a point on the page takes one of them up.
# Inserts (newest first) add more as they push older points down; at most this many are kept.
SPARE_ITEMS = 8
_OUTSIDE = -1  # a point's place when the page does not hold it


@dataclass(frozen=True, slots=True)
class ListedPoint:
    """A point as a listing holds it: what filters and order need, and its JSON as the page renders it."""

    id: str
    name: str
    tags: tuple[str, ...]
    value: float
    timestamp: str  # format_timestamp: fixed width, so text order is time order
    json: bytes

    @classmethod
    def of(cls, metric: Metric) -> ListedPoint:
        doc = metric.to_json()
        return cls(metric.id, metric.name, metric.tags, metric.value, doc["timestamp"], kept_json(doc))

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ListedPoint:
        """From `Metric.to_json()` as it crossed the wire (orjson reads back the same text it wrote)."""
        return cls(doc["id"], doc["name"], tuple(doc["tags"]), float(doc["value"]), doc["timestamp"], kept_json(doc))


def kept_json(value: Any) -> bytes:
    """`orjson.dumps` for JSON held in memory past the request: orjson's bytes keep the capacity it wrote into
    (4 KiB for a 150-byte point), which made a cached page of 58 points cost 250 KB instead of 16."""
    return exact(orjson.dumps(value))


def exact(body: bytes) -> bytes:
    """A copy of `body` that occupies its length (see kept_json)."""
    return bytes(memoryview(body))


def is_updatable(query: MetricQuery) -> bool:
    """The newest page of a filter: the shape writes can update (an older page moves under its cursor)."""
    return query.order is SortOrder.DESC and query.cursor is None


def render_listing(items: Sequence[bytes], last: tuple[str, str] | None) -> bytes:
    """`{"items": [...], "next": cursor | null}` from each item's JSON and the (timestamp, id) of the last one
    when the page is full: the same bytes as `orjson.dumps` of the whole page."""
    cursor = b"null"
    if last is not None:
        cursor = orjson.dumps(Cursor(datetime.fromisoformat(last[0]), last[1]).encode())
    return b'{"items":[' + b",".join(items) + b'],"next":' + cursor + b"}"


def render_metrics(metrics: Sequence[Metric], limit: int) -> bytes:
    last = metrics[-1] if len(metrics) == limit else None
    items = [orjson.dumps(m.to_json()) for m in metrics]
    return render_listing(items, (format_timestamp(last.timestamp), last.id) if last else None)


@dataclass(frozen=True, slots=True)
class ListingFilter:
    """What a point must be to belong to a listing: as the store filters (tags all present, `start <= t < end`)."""

    name: str | None
    tags: tuple[str, ...]
    start: str | None
    end: str | None
    values: ValueRange

    @classmethod
    def of(cls, query: MetricQuery) -> ListingFilter:
        start = format_timestamp(query.start) if query.start is not None else None
        end = format_timestamp(query.end) if query.end is not None else None
        return cls(query.name, query.tags, start, end, query.values)

    def matches(self, point: ListedPoint) -> bool:
        if self.name is not None and point.name != self.name:
            return False
        if self.tags and not all(tag in point.tags for tag in self.tags):
            return False
        if self.start is not None and point.timestamp < self.start:
            return False
        if self.end is not None and point.timestamp >= self.end:
            return False
        values, value = self.values, point.value
        return not (
            (values.gt is not None and not value > values.gt)
            or (values.gte is not None and not value >= values.gte)
            or (values.lt is not None and not value < values.lt)
            or (values.lte is not None and not value <= values.lte)
        )


class ListingPage:
    """The newest `len(items)` matching points (all of them when `complete`), newest first, rendered as the
    first `limit`. Mutable: `apply` changes it in place, and says False when it can no longer be exact."""

    __slots__ = ("body", "complete", "filter", "items", "limit")

    def __init__(self, query: MetricQuery, points: Sequence[ListedPoint], complete: bool) -> None:
        self.filter = ListingFilter.of(query)
        self.limit = query.limit
        self.items = list(points)
        self.complete = complete
        self.body = self.render()

    @classmethod
    def read(cls, query: MetricQuery, found: Sequence[Metric]) -> ListingPage:
        """From the answer to `query` asked with `limit + SPARE_ITEMS`."""
        return cls(query, [ListedPoint.of(m) for m in found], len(found) < query.limit + SPARE_ITEMS)

    @property
    def size(self) -> int:
        """Bytes it keeps: its body and its points (their JSON and their objects)."""
        return len(self.body) + sum(len(item.json) + POINT_OVERHEAD_BYTES for item in self.items)

    def render(self) -> bytes:
        shown = self.items[: self.limit]
        last = shown[-1] if len(shown) == self.limit else None
        return render_listing([item.json for item in shown], (last.timestamp, last.id) if last else None)

    def apply(self, before: ListedPoint | None, after: ListedPoint | None) -> bool:
        """Apply one point's change (an insert: no `before`; a delete: no `after`); False: drop the page.

        A page filled from the database after this write already shows it: then the change finds the point as
        `after` (or absent where `after` does not belong) and leaves it so. A page that shows neither `before`
        where it belongs nor `after` is not what this change was made against, and is refused.
        """
        point = before or after
        if point is None:
            return True
        at = next((i for i, item in enumerate(self.items) if item.id == point.id), None)
        if at is not None:
            held = self.items[at].json
            if after is not None and held == after.json:
                return True  # shown already
            if before is None or held != before.json:
                return False
            del self.items[at]
        elif before is not None and self._place(before) != _OUTSIDE:
            return False  # it belongs here but is missing, or its place is uncertain
        if after is not None:
            place = self._place(after)
            if place is None:
                return False
            if place != _OUTSIDE:
                self.items.insert(place, after)
        if len(self.items) > self.limit + SPARE_ITEMS:
            del self.items[self.limit + SPARE_ITEMS :]
            self.complete = False
        return self.complete or len(self.items) >= self.limit

    def refresh(self) -> None:
        self.body = self.render()

    def _place(self, point: ListedPoint) -> int | None:
        """The index `point` takes among the held points, _OUTSIDE if it is not among them, None if its place
        cannot be told (its timestamp ties a held point's: the database breaks such ties by id)."""
        if not self.filter.matches(point):
            return _OUTSIDE
        for index, item in enumerate(self.items):
            if item.timestamp == point.timestamp:
                return None
            if item.timestamp < point.timestamp:
                return index
        return len(self.items) if self.complete else _OUTSIDE
