"""Bucket documents: the points of one series as packed binary columns, with their summary beside them.

```
{_id: ObjectId, series: int, start: date, end: date,          # first and last timestamp held
 count: int, sum: float, min: float, max: float,               # over `v`
 ts: bin int64 ms[count], v: bin float64[count], seq: bin uint64[count],   # little-endian, sorted by (ts, seq)
 alias?: {"<index>": "<id>"},                                   # points whose id is not derived from the slot
 rev: int}                                                      # bumped by every edit (optimistic concurrency)
```

Packed columns, not BSON arrays: BSON spends a key per array element, and decoding a thousand elements in
Python is what made array buckets slow to read (docs/storage-design.md, `python -m bench.bucket_probe`).
"""

from __future__ import annotations

import sys
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from telemetry_server.models.point_id import PointId
from telemetry_server.models.timestamps import from_millis

Document = dict[str, Any]

# A bucket seals at 1,000 points: ingest stops gaining past ~1,000 (bench.bucket_probe), and with packed
# columns the cost of decoding a bucket to use a few of its points stays flat. An hour of span bounds how far a
# bucket's points may be apart, so an edge bucket of a sparse series holds at most an hour of it and retention
# keeps an expired point at most an hour too long.
MAX_POINTS = 1000
MAX_SPAN_MS = 3_600_000
_LITTLE = sys.byteorder == "little"


class Slot(NamedTuple):
    """One point in a bucket: its timestamp, value, sequence number and, when it differs, its id."""

    millis: int
    value: float
    seq: int
    alias: str | None = None


class Summary(NamedTuple):
    """count, sum, min and max of the points of one series in [start, end]: a bucket's, or a rollup's."""

    series: int
    start_ms: int
    end_ms: int
    count: int  # type: ignore[assignment]  # the field shadows tuple.count, which nothing here needs
    sum: float
    min: float
    max: float


@dataclass(slots=True)
class Columns:
    """The decoded columns of one bucket, in (ts, seq) order."""

    millis: array[int]
    values: array[float]
    seqs: array[int]
    aliases: dict[int, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.millis)

    def slots(self) -> Iterator[Slot]:
        aliases = self.aliases
        for index, (millis, value, seq) in enumerate(zip(self.millis, self.values, self.seqs, strict=True)):
            yield Slot(millis, value, seq, aliases.get(index))

    def index_of(self, millis: int, seq: int) -> int | None:
        """The position of the point (millis, seq), or None when the bucket does not hold it."""
        # The columns are in (ts, seq) order: only the points of that millisecond need looking at.
        for index in range(bisect_left(self.millis, millis), bisect_right(self.millis, millis)):
            if self.seqs[index] == seq:
                return index
        return None

    def point_id(self, series: int, index: int) -> str:
        alias = self.aliases.get(index)
        return alias if alias is not None else PointId(series, self.millis[index], self.seqs[index]).encode()


def _pack(column: array[Any]) -> bytes:
    # bytes are stored as BSON binary subtype 0, exactly as Binary(...) is, and cost a fifth of building one
    # (a bucket of one point, as a batch over many series writes, spent a quarter of its time there).
    if not _LITTLE:
        column = array(column.typecode, column)
        column.byteswap()
    return column.tobytes()


def _unpack(typecode: str, raw: bytes) -> array[Any]:
    column = array(typecode)
    column.frombytes(raw)
    if not _LITTLE:
        column.byteswap()
    return column


def decode_columns(doc: Mapping[str, Any]) -> Columns:
    aliases = {int(index): id_ for index, id_ in (doc.get("alias") or {}).items()}
    return Columns(_unpack("q", doc["ts"]), _unpack("d", doc["v"]), _unpack("Q", doc["seq"]), aliases)


def bucket_document(series: int, slots: Sequence[Slot]) -> Document:
    """A bucket of `slots` (non-empty, at most MAX_POINTS); they are put in (ts, seq) order here."""
    ordered = sorted(slots, key=lambda slot: (slot.millis, slot.seq))
    values = array("d", (slot.value for slot in ordered))
    doc: Document = {
        "series": series,
        "start": from_millis(ordered[0].millis),
        "end": from_millis(ordered[-1].millis),
        "count": len(ordered),
        "sum": sum(values),
        "min": min(values),
        "max": max(values),
        "ts": _pack(array("q", (slot.millis for slot in ordered))),
        "v": _pack(values),
        "seq": _pack(array("Q", (slot.seq for slot in ordered))),
        "rev": 0,
    }
    aliases = {str(index): slot.alias for index, slot in enumerate(ordered) if slot.alias is not None}
    if aliases:
        doc["alias"] = aliases
    return doc


def seal(slots: Sequence[Slot]) -> list[list[Slot]]:
    """The slots of one series cut into buckets: at most MAX_POINTS each, spanning at most MAX_SPAN_MS."""
    buckets: list[list[Slot]] = []
    current: list[Slot] = []
    for slot in sorted(slots, key=lambda s: (s.millis, s.seq)):
        if current and (len(current) == MAX_POINTS or slot.millis - current[0].millis > MAX_SPAN_MS):
            buckets.append(current)
            current = []
        current.append(slot)
    if current:
        buckets.append(current)
    return buckets


def without(columns: Columns, index: int) -> list[Slot]:
    """The bucket's slots less the one at `index` (an edit rewrites the bucket from these)."""
    return [slot for position, slot in enumerate(columns.slots()) if position != index]
