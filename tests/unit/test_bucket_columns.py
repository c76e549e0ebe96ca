"""Bucket documents: packed columns round trip, sealing by count and by span, aliases and edits."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from bson import BSON

from telemetry_server.models.point_id import PointId
from telemetry_server.models.timestamps import from_millis, to_millis
from telemetry_server.storage.bucket_columns import (
    MAX_POINTS,
    MAX_SPAN_MS,
    Slot,
    bucket_document,
    decode_columns,
    seal,
    without,
)

T0 = to_millis(datetime(2026, 11, 27, 10, tzinfo=UTC))


def test_millis_round_trip_through_datetimes() -> None:
    assert to_millis(from_millis(T0 + 7)) == T0 + 7
    assert from_millis(T0) == datetime(2026, 11, 27, 10, tzinfo=UTC)


def test_a_bucket_packs_its_slots_in_time_and_seq_order_and_unpacks_them() -> None:
    rng = random.Random(9)
    slots = [Slot(T0 + rng.randrange(50), rng.uniform(-1e9, 1e9), rng.randrange(2**64)) for _ in range(300)]

    doc = bucket_document(7, slots)
    columns = decode_columns(BSON.decode(BSON.encode(doc)))  # through BSON, as stored

    ordered = sorted(slots, key=lambda s: (s.millis, s.seq))
    assert list(columns.slots()) == ordered
    assert (doc["series"], doc["count"], doc["rev"]) == (7, 300, 0)
    assert (doc["start"], doc["end"]) == (from_millis(ordered[0].millis), from_millis(ordered[-1].millis))
    values = [s.value for s in slots]
    assert (doc["sum"], doc["min"], doc["max"]) == (sum(v for v in columns.values), min(values), max(values))
    assert "alias" not in doc


def test_aliases_keep_ids_not_derived_from_the_slot() -> None:
    legacy = "0123456789abcdef01234567"
    doc = bucket_document(3, [Slot(T0 + 5, 1.0, 9, legacy), Slot(T0, 2.0, 4)])
    columns = decode_columns(BSON.decode(BSON.encode(doc)))

    assert doc["alias"] == {"1": legacy}
    assert columns.point_id(3, 0) == PointId(3, T0, 4).encode()
    assert columns.point_id(3, 1) == legacy
    assert columns.index_of(T0 + 5, 9) == 1
    assert columns.index_of(T0 + 5, 4) is None


def test_without_leaves_the_other_slots_and_their_aliases() -> None:
    slots = [Slot(T0, 1.0, 1), Slot(T0 + 1, 2.0, 2, "0123456789abcdef01234567"), Slot(T0 + 2, 3.0, 3)]
    columns = decode_columns(bucket_document(1, slots))

    left = without(columns, 0)

    assert left == slots[1:]
    assert bucket_document(1, left)["alias"] == {"0": "0123456789abcdef01234567"}


def test_seal_cuts_at_the_point_count() -> None:
    slots = [Slot(T0 + i, float(i), i) for i in range(2 * MAX_POINTS + 1)]

    buckets = seal(list(reversed(slots)))

    assert [len(b) for b in buckets] == [MAX_POINTS, MAX_POINTS, 1]
    assert [s for b in buckets for s in b] == slots


def test_seal_cuts_where_a_bucket_would_span_more_than_its_limit() -> None:
    at = [T0, T0 + MAX_SPAN_MS, T0 + MAX_SPAN_MS + 1, T0 + 3 * MAX_SPAN_MS]
    slots = [Slot(millis, 0.0, n) for n, millis in enumerate(at)]

    buckets = seal(slots)

    assert [[s.millis for s in b] for b in buckets] == [at[:2], at[2:3], at[3:]]
    assert all(b[-1].millis - b[0].millis <= MAX_SPAN_MS for b in buckets)


def test_seal_of_nothing_is_no_bucket() -> None:
    assert seal([]) == []
