"""PageMerge against a brute-force sort: random buckets of several series, same-millisecond points, edges,
windows, value bounds and cursors in both orders."""

from __future__ import annotations

import itertools
import random

import pytest
from bson import ObjectId

from telemetry_server.models.metric import Metric
from telemetry_server.models.metric_query import Cursor, MetricQuery, SortOrder
from telemetry_server.models.timestamps import from_millis
from telemetry_server.models.value_range import ValueRange
from telemetry_server.storage.bucket_columns import Document, Slot, bucket_document, decode_columns, seal
from telemetry_server.storage.bucket_pages import PageMerge
from telemetry_server.storage.series_index import Series

T0 = 1_764_237_600_000
SERIES = {1: Series(1, "cpu", ("host:a",)), 2: Series(2, "cpu", ("host:b",)), 3: Series(3, "mem", ())}


def random_buckets(rng: random.Random) -> tuple[list[Document], list[Metric]]:
    """Points written in random batches (so buckets of one series overlap in time), sealed as the store does;
    some carry an alias, whose order among points of the same millisecond is not their slot's."""
    seqs = itertools.count(1)
    docs: list[Document] = []
    metrics: list[Metric] = []
    for _ in range(rng.randrange(3, 8)):
        batch: dict[int, list[Slot]] = {}
        for _ in range(rng.randrange(1, 150)):
            series = rng.choice(list(SERIES))
            millis = T0 + rng.randrange(0, 6_000_000, rng.choice([1, 7, 60_000]))  # many in one millisecond
            alias = f"{rng.getrandbits(96):024x}" if rng.random() < 0.1 else None  # a migrated or moved point
            batch.setdefault(series, []).append(Slot(millis, float(rng.randrange(100)), next(seqs), alias))
        for series, slots in batch.items():
            for part in seal(slots):
                doc = bucket_document(series, part)
                doc["_id"] = ObjectId()
                docs.append(doc)
    for doc in docs:
        columns, series = decode_columns(doc), SERIES[doc["series"]]
        for index, slot in enumerate(columns.slots()):
            id_ = columns.point_id(series.id, index)
            metrics.append(Metric(id_, series.name, series.tags, slot.value, from_millis(slot.millis)))
    return docs, metrics


def brute_force(metrics: list[Metric], query: MetricQuery, series: set[int] | None) -> list[Metric]:
    wanted = {SERIES[s][1:] for s in series} if series is not None else None
    found = [
        m
        for m in metrics
        if (wanted is None or (m.name, m.tags) in wanted)
        and (query.start is None or m.timestamp >= query.start)
        and (query.end is None or m.timestamp < query.end)
        and all(
            {"gt": m.value > b, "gte": m.value >= b, "lt": m.value < b, "lte": m.value <= b}[op]
            for op, b in query.values.bounds().items()
            if b is not None
        )
    ]
    desc = query.order is SortOrder.DESC
    found.sort(key=lambda m: (m.timestamp, m.id), reverse=desc)
    if query.cursor is not None:
        after = (query.cursor.timestamp, query.cursor.id)
        found = [m for m in found if ((m.timestamp, m.id) < after if desc else (m.timestamp, m.id) > after)]
    return found[: query.limit]


def merged(docs: list[Document], query: MetricQuery, series: set[int] | None, rng: random.Random) -> list[Metric]:
    """What the store does: buckets of the series by `end` (ties in any order) until the page is full, or for
    sort=asc could be, then those overlapping its edge."""
    desc = query.order is SortOrder.DESC
    chosen = [d for d in docs if series is None or d["series"] in series]
    rng.shuffle(chosen)
    chosen.sort(key=lambda d: d["end"], reverse=desc)
    merge = PageMerge(query, SERIES.get)
    for doc in chosen:
        merge.add(doc)
        if merge.full:
            break
        edge = merge.edge()
        if not desc and edge is not None:
            for other in chosen:
                if other["end"] >= doc["end"] and other["start"] <= from_millis(edge):
                    merge.add(other)
            break
    return merge.finish()


@pytest.mark.parametrize("seed", range(6))
def test_pages_through_cursors_equal_a_brute_force_sort(seed: int) -> None:
    rng = random.Random(seed)
    docs, metrics = random_buckets(rng)
    for order, series, limit in itertools.product(SortOrder, [None, {1}, {1, 2}, {2, 3}], [1, 7, 50]):
        start = from_millis(T0 + rng.randrange(3_000_000)) if rng.random() < 0.5 else None
        end = from_millis(T0 + 3_000_000 + rng.randrange(3_000_000)) if rng.random() < 0.5 else None
        values = ValueRange(gt=float(rng.randrange(50))) if rng.random() < 0.3 else ValueRange()
        query = MetricQuery(start=start, end=end, limit=limit, order=order, values=values)
        pages = 0
        while True:
            page = merged(docs, query, series, rng)
            assert page == brute_force(metrics, query, series), (order, series, limit, pages)
            if len(page) < limit:
                break
            query = MetricQuery(
                start=start,
                end=end,
                limit=limit,
                order=order,
                values=values,
                cursor=Cursor(page[-1].timestamp, page[-1].id),
            )
            pages += 1
            if pages > 40:  # a page of 1 over thousands of points: the first pages are enough
                break


def test_a_compaction_seen_half_way_counts_each_point_once() -> None:
    slots = [Slot(T0 + i * 1000, float(i), i + 1) for i in range(10)]
    sources = [bucket_document(1, slots[:5]), bucket_document(1, slots[5:])]
    merged_doc = bucket_document(1, slots)
    for doc in sources:
        doc["_id"] = ObjectId()
    merged_doc["_id"] = ObjectId()
    merged_doc["replaces"] = [doc["_id"] for doc in sources]

    for order in SortOrder:
        everything = MetricQuery(limit=100, order=order)
        desc = order is SortOrder.DESC
        for reading in ([*sources, merged_doc], [merged_doc, *sources]):
            reading.sort(key=lambda d: d["end"], reverse=desc)
            merge = PageMerge(everything, SERIES.get)
            for doc in reading:
                merge.add(doc)
            page = merge.finish()
            assert [m.value for m in page] == sorted((float(i) for i in range(10)), reverse=desc)


def test_buckets_of_a_series_the_listing_does_not_know_are_skipped() -> None:
    doc = bucket_document(99, [Slot(T0, 1.0, 1)])
    doc["_id"] = ObjectId()
    merge = PageMerge(MetricQuery(), SERIES.get)

    merge.add(doc)

    assert merge.finish() == []


def test_a_point_is_held_back_until_no_unread_bucket_can_precede_it() -> None:
    early = bucket_document(1, [Slot(T0, 1.0, 1), Slot(T0 + 10_000, 2.0, 2)])
    late = bucket_document(2, [Slot(T0 + 5_000, 3.0, 3)])
    for doc in (early, late):
        doc["_id"] = ObjectId()
    merge = PageMerge(MetricQuery(limit=1), SERIES.get)

    merge.add(early)  # newest end first
    assert not merge.full  # T0 + 10 s may not be first: the next bucket ends at T0 + 5 s, later buckets earlier
    merge.add(late)
    assert merge.full
    assert [m.value for m in merge.finish()] == [2.0]
