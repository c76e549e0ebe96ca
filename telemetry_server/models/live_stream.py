"""Live streams: what a subscriber asks for (filters, rollup), the events it is sent, and their two wire forms."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

from telemetry_server.errors import FieldError, ValidationFailed
from telemetry_server.models.metric import check_name, check_tags
from telemetry_server.models.metric_query import collect_params
from telemetry_server.models.time_range import parse_duration
from telemetry_server.models.timestamps import format_timestamp, from_millis, parse_timestamp_text, to_millis
from telemetry_server.models.value_range import VALUE_PARAMS, ValueRange, parse_value_range

TOKEN_PARAM = "token"
_PARAMS = frozenset({"name", "name_prefix", "tag", "every", "fn", TOKEN_PARAM, *VALUE_PARAMS})
# A rollup interval is at least a second (finer is what plain points are for) and at most an hour: a subscriber's
# open intervals are held in memory until they close.
_EVERY_MAX_SECONDS = 3600


class EventKind(StrEnum):
    POINT = "point"
    ROLLUP = "rollup"
    GAP = "gap"
    LAGGED = "lagged"
    BYE = "bye"
    KEEP_ALIVE = "keep-alive"  # WebSocket only: SSE keeps alive with a comment line


class ChangeOp(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


class RollupFn(StrEnum):
    AVG = "avg"
    MIN = "min"
    MAX = "max"
    SUM = "sum"
    COUNT = "count"
    LAST = "last"


@dataclass(frozen=True, slots=True)
class Rollup:
    every_seconds: int
    fn: RollupFn


@dataclass(frozen=True, slots=True)
class StreamQuery:
    """The listing's filters, `name_prefix` as the aggregates have it, and an optional rollup."""

    name: str | None = None
    name_prefix: str | None = None
    tags: tuple[str, ...] = ()
    values: ValueRange = field(default_factory=ValueRange)
    rollup: Rollup | None = None

    def matches(self, change: Change) -> bool:
        if self.name is not None and change.name != self.name:
            return False
        if self.name_prefix is not None and not change.name.startswith(self.name_prefix):
            return False
        if self.tags and not set(self.tags).issubset(change.tags):
            return False
        return not self.values.bounded or _within(self.values, change.value)

    @property
    def filters(self) -> tuple[object, ...]:
        """The same for every subscriber that filters alike: they share one match per change."""
        return (self.name, self.name_prefix, self.tags, self.values)


def _within(bounds: ValueRange, value: float) -> bool:
    if math.isnan(value):
        return False
    return not (
        (bounds.gt is not None and value <= bounds.gt)
        or (bounds.gte is not None and value < bounds.gte)
        or (bounds.lt is not None and value >= bounds.lt)
        or (bounds.lte is not None and value > bounds.lte)
    )


def parse_stream_query(params: Sequence[tuple[str, str]]) -> StreamQuery:
    """Read `name`, `name_prefix`, `tag` (repeatable), `value_*`, `every` with `fn`; `token` is auth's."""
    errors: list[FieldError] = []

    def fail(field_name: str, message: str) -> None:
        errors.append(FieldError(field_name, message))

    single, tags = collect_params(params, _PARAMS, fail)
    name = check_name(single["name"], fail) if "name" in single else None
    prefix = single.get("name_prefix")
    if prefix is not None:
        prefix = check_name(prefix, lambda _, message: fail("name_prefix", message))
        if name is not None:
            fail("name_prefix", "cannot be combined with name")
    checked_tags = tuple(sorted(set(check_tags(tags, fail)))) if tags else ()
    values = parse_value_range(single, fail)
    rollup = _rollup(single, fail)
    if errors:
        raise ValidationFailed(errors)
    return StreamQuery(name, prefix, checked_tags, values, rollup)


def _rollup(single: dict[str, str], fail: Any) -> Rollup | None:
    every, fn = single.get("every"), single.get("fn")
    if every is None:
        if fn is not None:
            fail("fn", "needs every (the rollup interval, e.g. every=10s)")
        return None
    delta = parse_duration(every)
    seconds = int(delta.total_seconds()) if delta is not None else 0
    if not 1 <= seconds <= _EVERY_MAX_SECONDS:
        fail("every", f"must be a duration from 1s to {_EVERY_MAX_SECONDS // 60}m, e.g. 10s")
    try:
        chosen = RollupFn(fn or RollupFn.AVG)
    except ValueError:
        fail("fn", f"must be one of {', '.join(RollupFn)}")
        return None
    return Rollup(seconds, chosen)


@dataclass(frozen=True, slots=True)
class Change:
    """One acknowledged write of one point as the change log holds it: `data` is the `point` event's JSON,
    built once by the writer and sent as is to every subscriber."""

    op: ChangeOp
    name: str
    tags: tuple[str, ...]
    value: float
    timestamp: str
    data: bytes

    @property
    def millis(self) -> int:
        """Read only by rollups: most subscribers never need the timestamp parsed."""
        return to_millis(parse_timestamp_text(self.timestamp))


def encode_change(op: ChangeOp, metric: dict[str, Any]) -> bytes:
    """The log entry of one change: the `point` event's data, `{"op", "metric"}`."""
    return orjson.dumps({"op": op, "metric": metric})


def decode_change(data: bytes) -> Change:
    document = orjson.loads(data)
    metric = document["metric"]
    return Change(
        ChangeOp(document["op"]),
        metric["name"],
        tuple(metric["tags"]),
        float(metric["value"]),
        metric["timestamp"],
        data,
    )


class Event:
    """One event for subscribers; its two wire forms are built once, however many subscribers it goes to."""

    __slots__ = ("_sse", "_ws", "data", "id", "kind")

    def __init__(self, kind: EventKind, event_id: str | None, data: bytes) -> None:
        self.kind = kind
        self.id = event_id
        self.data = data
        self._sse: bytes | None = None
        self._ws: str | None = None

    @classmethod
    def of(cls, kind: EventKind, event_id: str | None, document: dict[str, Any]) -> Event:
        return cls(kind, event_id, orjson.dumps(document))

    def sse(self) -> bytes:
        """`event:`, `id:` (resumable events only) and `data:` lines; the data is one line of JSON."""
        if self._sse is None:
            head = b"event: " + self.kind.encode() + b"\n"
            if self.id is not None:
                head += b"id: " + self.id.encode() + b"\n"
            self._sse = head + b"data: " + self.data + b"\n\n"
        return self._sse

    def ws(self) -> str:
        """`{"event", "id", "data"}` as one JSON text message."""
        if self._ws is None:
            event_id = "null" if self.id is None else f'"{self.id}"'
            self._ws = f'{{"event":"{self.kind}","id":{event_id},"data":{self.data.decode()}}}'
        return self._ws


def gap_event(oldest: str | None, detail: str) -> Event:
    return Event.of(EventKind.GAP, None, {"detail": detail, "oldest": oldest})


def lagged_event(skipped: int) -> Event:
    return Event.of(
        EventKind.LAGGED,
        None,
        {"detail": f"this subscriber fell behind; {skipped} events were skipped", "skipped": skipped},
    )


BYE = Event.of(EventKind.BYE, None, {"detail": "server shutting down"})
KEEP_ALIVE = Event.of(EventKind.KEEP_ALIVE, None, {})


@dataclass(slots=True)
class _Interval:
    start: int
    value: float
    count: int


class RollupFold:
    """One subscriber's open intervals, per series: points fold in as they come; an interval is sent once the
    clock has passed its end by `grace_millis` (late points of a closed interval start a new fold of it)."""

    def __init__(self, rollup: Rollup, grace_millis: int = 1000) -> None:
        self._rollup = rollup
        self._every = rollup.every_seconds * 1000
        self._grace = grace_millis
        self._open: dict[tuple[str, tuple[str, ...], int], _Interval] = {}

    def add(self, change: Change) -> None:
        if change.op is ChangeOp.DELETE or math.isnan(change.value):
            return  # a rollup summarises what is written; deletes and NaNs have no place in it
        start = change.millis - change.millis % self._every
        key = (change.name, change.tags, start)
        interval = self._open.get(key)
        if interval is None:
            self._open[key] = _Interval(start, change.value, 1)
            return
        interval.value = _fold(self._rollup.fn, interval.value, change.value, interval.count)
        interval.count += 1

    def close(self, now_millis: int) -> list[Event]:
        """The intervals that ended `grace_millis` before `now_millis`, as `rollup` events."""
        events = []
        for key in [key for key in self._open if key[2] + self._every + self._grace <= now_millis]:
            interval = self._open.pop(key)
            value = float(interval.count) if self._rollup.fn is RollupFn.COUNT else interval.value
            events.append(
                Event.of(
                    EventKind.ROLLUP,
                    None,
                    {
                        "name": key[0],
                        "tags": list(key[1]),
                        "fn": self._rollup.fn,
                        "start": format_timestamp(from_millis(interval.start)),
                        "end": format_timestamp(from_millis(interval.start + self._every)),
                        "value": value,
                        "count": interval.count,
                    },
                )
            )
        return events


def _fold(fn: RollupFn, held: float, value: float, count: int) -> float:
    if fn is RollupFn.AVG:
        return held + (value - held) / (count + 1)
    if fn is RollupFn.MIN:
        return min(held, value)
    if fn is RollupFn.MAX:
        return max(held, value)
    if fn is RollupFn.SUM:
        return held + value
    return value  # LAST, and COUNT (which reports the count)


# Where an event stands in the change log: its entry's (milliseconds, sequence) and its place in the entry.
Position = tuple[int, int, int]


def event_id(entry_id: str, index: int) -> str:
    """`<entry id>:<index>`: one log entry holds the changes of one write (a group commit, a batch's chunk)."""
    return f"{entry_id}:{index}"


def parse_event_id(text: str) -> Position | None:
    """None for anything this server did not send (`Last-Event-ID` and `resume` come from clients)."""
    entry, colon, index = text.partition(":")
    millis, dash, sequence = entry.partition("-")
    parts = (millis, sequence, index)
    if len(text) > 64 or not colon or not dash or not all(p.isascii() and p.isdigit() for p in parts):
        return None
    return int(millis), int(sequence), int(index)


def entry_position(entry_id: str) -> Position:
    """The position just before the entry's first event."""
    millis, _, sequence = entry_id.partition("-")
    return int(millis), int(sequence), -1
