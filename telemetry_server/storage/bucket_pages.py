"""PageMerge: one page of a listing, merged from buckets read in time order (pure: the store feeds it documents).

Buckets are read newest `end` first. For sort=desc a point goes on the page once no unread bucket can hold a
point that sorts before it: every unread bucket ends at or before the next one's `end`, so a point strictly
later than that is final. For sort=asc the same index is read oldest `end` first, which bounds nothing about
an unread bucket's `start`: buckets are read until the page could be full (`edge`), then the store reads the
unread buckets that start at or before the edge (few: those overlapping it), and the page is final.
The order is (timestamp, id), the keyset the cursor carries, exactly as when each point was a document.
"""

from __future__ import annotations

import operator
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from telemetry_server.models.metric import Metric
from telemetry_server.models.metric_query import MetricQuery, SortOrder
from telemetry_server.models.timestamps import from_millis, to_millis
from telemetry_server.storage.bucket_columns import decode_columns
from telemetry_server.storage.series_index import Series

_COMPARE = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}


class _Candidate(NamedTuple):
    millis: int
    id: str
    value: float
    series: int


class PageMerge:
    def __init__(self, query: MetricQuery, series_of: Callable[[int], Series | None]) -> None:
        self._desc = query.order is SortOrder.DESC
        self._limit = query.limit
        self._series_of = series_of
        self._from = to_millis(query.start) if query.start is not None else None  # inclusive
        self._to = to_millis(query.end) if query.end is not None else None  # exclusive
        cursor = query.cursor
        self._cursor = (to_millis(cursor.timestamp), cursor.id) if cursor is not None else None
        self._tests = [(_COMPARE[op], bound) for op, bound in query.values.bounds().items() if bound is not None]
        self.page: list[Metric] = []
        self._pending: list[_Candidate] = []
        # A point is counted once by its id: a compaction's merged bucket and its sources, or a move's new and
        # old copy, may both be read for a moment.
        self._seen: set[str] = set()
        self._replaced: set[Any] = set()  # buckets a compaction merged, named by the merged bucket

    @property
    def full(self) -> bool:
        return len(self.page) >= self._limit

    @property
    def missing(self) -> int:
        """Points the page still lacks."""
        return self._limit - len(self.page)

    @property
    def releasing(self) -> bool:
        """Whether points go on the page as buckets arrive (sort=desc), or all at the end (sort=asc)."""
        return self._desc

    def edge(self) -> int | None:
        """sort=asc: the time of the last point a full page would now hold (None: not enough points yet); only
        buckets starting at or before it can still change the page."""
        wanted = self._limit - len(self.page)
        if self._desc or len(self._pending) < wanted:
            return None
        return self._pending[wanted - 1].millis

    def add(self, doc: Mapping[str, Any]) -> None:
        """The next bucket in reading order; it must carry _id, series, start, end, ts, v, seq (alias, replaces).

        A bucket added twice (read again while looking for overlaps) adds nothing: points count once by id."""
        if self._desc:
            self._release(to_millis(doc["end"]))
        if self.full or doc["_id"] in self._replaced:
            return
        self._replaced.update(doc.get("replaces") or ())
        series = doc["series"]
        if self._series_of(series) is None:
            return  # a series created after this listing resolved its filter: its write is not older than the read
        self._take(series, doc)

    def finish(self) -> list[Metric]:
        """The page, once every bucket that could hold part of it was added."""
        self._release(None)
        return self.page

    def _take(self, series: int, doc: Mapping[str, Any]) -> None:
        columns = decode_columns(doc)
        millis, values = columns.millis, columns.values
        lo = 0 if self._from is None else bisect_left(millis, self._from)
        hi = len(millis) if self._to is None else bisect_left(millis, self._to)
        cursor = self._cursor
        if cursor is not None:
            if self._desc:
                hi = min(hi, bisect_right(millis, cursor[0]))
            else:
                lo = max(lo, bisect_left(millis, cursor[0]))
        positions = range(hi - 1, lo - 1, -1) if self._desc else range(lo, hi)
        wanted = self._limit - len(self.page)
        taken, last = 0, -1
        for position in positions:
            at = millis[position]
            # Past `wanted` points only ties of the last one taken can still matter (ids decide among them).
            if taken >= wanted and at != last:
                break
            value = values[position]
            if not all(test(value, bound) for test, bound in self._tests):
                continue
            id_ = columns.point_id(series, position)
            if cursor is not None and at == cursor[0] and ((id_ >= cursor[1]) if self._desc else (id_ <= cursor[1])):
                continue
            if id_ in self._seen:
                continue
            self._seen.add(id_)
            self._pending.append(_Candidate(at, id_, value, series))
            taken, last = taken + 1, at
        if taken:
            self._pending.sort(key=lambda c: (c.millis, c.id), reverse=self._desc)
            del self._pending[wanted:]

    def _release(self, bound: int | None) -> None:
        """Move to the page the pending points later than `bound`, the end of every bucket still unread (sort=desc;
        None: all pending points)."""
        pending = self._pending
        count = 0
        for candidate in pending:
            if bound is not None and candidate.millis <= bound:
                break
            count += 1
        if not count:
            return
        for candidate in pending[:count]:
            series = self._series_of(candidate.series)
            assert series is not None
            self.page.append(
                Metric(candidate.id, series.name, series.tags, candidate.value, from_millis(candidate.millis))
            )
        del pending[:count]
        del self.page[self._limit :]
