"""The migration's pure parts: what a chunk of old documents becomes, and how progress reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId

from telemetry_server.models.timestamps import to_millis
from telemetry_server.storage.bucket_columns import MAX_POINTS, decode_columns
from telemetry_server.storage.migration import Progress, bucket_id, build_chunk, series_key_of

START = datetime(2026, 11, 20, tzinfo=UTC)


def old_docs(count: int, name: str = "cpu", tags: list[str] | None = None, step_ms: int = 1) -> list[dict[str, Any]]:
    return [
        {
            "_id": ObjectId(),
            "name": name,
            "tags": tags or [],
            "value": float(i),
            "timestamp": START + timedelta(milliseconds=i * step_ms),
        }
        for i in range(count)
    ]


def test_a_chunk_is_the_same_on_every_attempt() -> None:
    docs = old_docs(1_500) + old_docs(10, tags=["host:a"])
    ids = {series_key_of(doc): n for n, doc in enumerate(docs[-1:] + docs[:1], start=1)}

    first, again = build_chunk(docs, ids, 7 << 32), build_chunk(docs, ids, 7 << 32)

    assert first == again
    assert [bucket["count"] for bucket in first.buckets] == [10, MAX_POINTS, 500]  # sealed by count, series order
    assert len({bucket["_id"] for bucket in first.buckets}) == 3


def test_every_slot_keeps_its_old_id_and_a_legacy_row_names_it() -> None:
    docs = old_docs(30, step_ms=0)  # one millisecond: the sequence numbers tell them apart
    chunk = build_chunk(docs, {("cpu", ()): 4}, (9 << 32) + 100)

    columns = decode_columns(chunk.buckets[0])
    for offset, (doc, row) in enumerate(zip(docs, chunk.legacy, strict=True)):
        assert row == {"_id": doc["_id"], "series": 4, "millis": to_millis(START), "seq": (9 << 32) + 100 + offset}
        index = columns.index_of(row["millis"], row["seq"])
        assert index is not None
        assert columns.point_id(4, index) == str(doc["_id"])
        assert columns.values[index] == doc["value"]


def test_buckets_of_different_chunks_or_series_get_different_ids() -> None:
    a, b = ObjectId(), ObjectId()
    assert len({bucket_id(a, 1, 0), bucket_id(a, 1, 1), bucket_id(a, 2, 0), bucket_id(b, 1, 0)}) == 4
    assert bucket_id(a, 1, 0) == bucket_id(a, 1, 0)
    assert bucket_id(a, 1, 0).generation_time == a.generation_time


def test_progress_says_done_total_rate_and_time_left() -> None:
    assert Progress(2_500, 10_000, 2_000, 2.0).describe() == (
        "migrated 2,500 / 10,000 points (25.0%), 1,000 points/s, ETA 8s"
    )
    assert Progress(0, 10_000_000, 10_000, 1.0).describe().endswith("ETA 16m40s")
    assert Progress(5, 5, 5, 0.5).describe() == "migrated 5 / 5 points (100.0%), 10 points/s"
    assert Progress(0, 0, 0, 0.0).describe() == "migrated 0 / 0 points, 0 points/s"
