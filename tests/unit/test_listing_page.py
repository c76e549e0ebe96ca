"""ListingPage: a cached newest-first page that writes update in place, exactly, or that asks to be dropped."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from telemetry_server.models.metric import Metric, MetricInput
from telemetry_server.models.metric_query import Cursor, MetricQuery, SortOrder
from telemetry_server.models.value_range import ValueRange
from telemetry_server.services.listing_page import (
    SPARE_ITEMS,
    ListedPoint,
    ListingPage,
    is_updatable,
    render_listing,
    render_metrics,
)
from tests.fakes import InMemoryMetricStore

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
CPU_EU = MetricQuery(name="cpu", tags=("region:eu",), limit=3)


def at(second: float) -> datetime:
    return T0 + timedelta(seconds=second)


def metric(
    id_: int, second: float, name: str = "cpu", tags: tuple[str, ...] = ("region:eu",), value: float = 1.0
) -> Metric:
    return Metric(f"{id_:024x}", name, tags, value, at(second))


def point(m: Metric) -> ListedPoint:
    return ListedPoint.of(m)


def page_of(query: MetricQuery, metrics: list[Metric]) -> ListingPage:
    """The page as a fill reads it: the newest `limit + SPARE_ITEMS` matching points of `metrics`."""
    store = InMemoryMetricStore()
    store.metrics = {m.id: m for m in metrics}
    return ListingPage.read(query, asyncio.run(store.find(replace(query, limit=query.limit + SPARE_ITEMS))))


def fresh(query: MetricQuery, metrics: list[Metric]) -> bytes:
    store = InMemoryMetricStore()
    store.metrics = {m.id: m for m in metrics}
    return render_metrics(asyncio.run(store.find(query)), query.limit)


def ids(page: ListingPage) -> list[int]:
    return [int(item.id, 16) for item in page.items]


def test_the_body_is_the_bytes_of_the_whole_page_dumped_at_once() -> None:
    metrics = [metric(i, i, value=i / 3) for i in range(5)]
    last = metrics[2]
    whole = orjson.dumps(
        {"items": [m.to_json() for m in metrics[:3]], "next": Cursor(last.timestamp, last.id).encode()}
    )
    assert render_metrics(metrics[:3], 3) == whole
    assert render_listing([], None) == orjson.dumps({"items": [], "next": None})


def test_a_new_point_enters_at_the_top() -> None:
    old = [metric(i, i) for i in range(10)]
    page = page_of(CPU_EU, old)
    new = metric(99, 60)

    assert page.apply(None, point(new))
    page.refresh()

    assert ids(page)[:4] == [99, 9, 8, 7]
    assert page.body == fresh(CPU_EU, [*old, new])


def test_points_outside_the_filter_leave_the_page_as_it_is() -> None:
    old = [metric(i, i) for i in range(10)]
    query = replace(CPU_EU, start=at(1), end=at(100), values=ValueRange(gte=0.5))
    page = page_of(query, old)
    before = (ids(page), page.body)
    others = [
        metric(90, 60, name="mem"),
        metric(91, 60, tags=("region:us",)),
        metric(92, 100),  # `to` is exclusive
        metric(93, 0.5),  # before `from`
        metric(94, 60, value=0.25),
    ]
    for other in others:
        assert page.apply(None, point(other))
    page.refresh()
    assert (ids(page), page.body) == before
    assert page.body == fresh(query, [*old, *others])


def test_a_point_older_than_the_page_holds_is_not_taken_in() -> None:
    old = [metric(i, 10 + i) for i in range(20)]
    page = page_of(CPU_EU, old)
    assert not page.complete
    held = ids(page)

    assert page.apply(None, point(metric(99, 1)))
    assert ids(page) == held


def test_a_complete_page_takes_in_an_older_point_at_its_end() -> None:
    old = [metric(i, 10 + i) for i in range(2)]
    page = page_of(CPU_EU, old)
    assert page.complete
    new = metric(99, 1)

    assert page.apply(None, point(new))
    page.refresh()
    assert ids(page) == [1, 0, 99]
    assert page.body == fresh(CPU_EU, [*old, new])


def test_a_delete_on_the_page_is_taken_up_by_a_spare() -> None:
    old = [metric(i, i) for i in range(20)]
    page = page_of(CPU_EU, old)
    gone = old[18]  # the second newest, shown

    assert page.apply(point(gone), None)
    page.refresh()
    assert page.body == fresh(CPU_EU, [m for m in old if m is not gone])


def test_a_page_that_runs_out_of_spares_is_dropped() -> None:
    old = [metric(i, i) for i in range(20)]
    page = page_of(CPU_EU, old)
    kept = [True]
    for gone in reversed(old[-(SPARE_ITEMS + 1) :]):
        kept.append(page.apply(point(gone), None))
    assert kept[:-1] == [True] * (SPARE_ITEMS + 1)
    assert kept[-1] is False  # fewer than `limit` held, and more match in the database


def test_a_complete_page_may_shrink_below_its_limit() -> None:
    old = [metric(i, i) for i in range(2)]
    page = page_of(CPU_EU, old)

    assert page.apply(point(old[1]), None)
    page.refresh()
    assert page.body == fresh(CPU_EU, old[:1])


def test_a_put_moves_its_point_within_the_page_and_out_of_it() -> None:
    old = [metric(i, i) for i in range(20)]
    page = page_of(CPU_EU, old)
    moved = replace(old[12], timestamp=at(60), value=7.0)

    assert page.apply(point(old[12]), point(moved))
    page.refresh()
    assert ids(page)[:3] == [12, 19, 18]
    assert page.body == fresh(CPU_EU, [moved if m.id == moved.id else m for m in old])

    elsewhere = replace(moved, name="mem")
    assert page.apply(point(moved), point(elsewhere))
    page.refresh()
    assert 12 not in ids(page)
    assert page.body == fresh(CPU_EU, [elsewhere if m.id == moved.id else m for m in old])


def test_a_point_whose_place_the_page_cannot_tell_drops_the_page() -> None:
    old = [metric(i, i) for i in range(20)]
    page = page_of(CPU_EU, old)

    assert not page.apply(None, point(metric(99, 17)))  # ties a held point: the store breaks ties by id


def test_a_change_the_page_already_shows_leaves_it_as_it_is() -> None:
    old = [metric(i, i) for i in range(20)]
    new = metric(99, 60)
    page = page_of(CPU_EU, [*old, new])  # filled after the write, before its message came
    body = page.body

    assert page.apply(None, point(new))
    page.refresh()
    assert page.body == body


def test_a_change_made_against_another_version_drops_the_page() -> None:
    old = [metric(i, i) for i in range(20)]
    page = page_of(CPU_EU, old)
    other_version = replace(old[18], value=5.0)

    assert not page.apply(point(other_version), point(replace(old[18], value=6.0)))
    assert not page_of(CPU_EU, old[:-1]).apply(point(old[19]), None)  # shown nowhere, yet it belongs on top


def test_a_point_from_the_wire_is_the_point_it_was() -> None:
    m = metric(7, 3.25, tags=("region:eu", "host:a"), value=1e-7)
    assert ListedPoint.from_json(orjson.loads(orjson.dumps(m.to_json()))) == point(m)


def test_only_the_newest_page_of_a_filter_is_updatable() -> None:
    assert is_updatable(CPU_EU)
    assert not is_updatable(replace(CPU_EU, order=SortOrder.ASC))
    assert not is_updatable(replace(CPU_EU, cursor=Cursor(T0, f"{1:024x}")))


NAMES = st.sampled_from(["cpu", "mem"])
TAG_SETS = st.lists(st.sampled_from(["region:eu", "region:us", "host:a"]), max_size=3, unique=True).map(tuple)
SECONDS = st.integers(0, 40)
WRITES = st.lists(
    st.one_of(
        st.tuples(st.just("post"), NAMES, TAG_SETS, st.integers(0, 9), SECONDS),
        st.tuples(st.just("put"), st.integers(0, 1_000), NAMES, TAG_SETS, st.integers(0, 9), SECONDS),
        st.tuples(st.just("delete"), st.integers(0, 1_000)),
    ),
    max_size=40,
)
SEEDED = st.lists(st.tuples(NAMES, TAG_SETS, st.integers(0, 9), SECONDS), max_size=30)
QUERIES = st.builds(
    MetricQuery,
    name=st.one_of(st.none(), NAMES),
    tags=st.lists(st.sampled_from(["region:eu", "host:a"]), max_size=2, unique=True).map(lambda t: tuple(sorted(t))),
    start=st.one_of(st.none(), st.just(at(5))),
    end=st.one_of(st.none(), st.just(at(35))),
    limit=st.integers(1, 6),
    values=st.one_of(st.just(ValueRange()), st.just(ValueRange(gt=2)), st.just(ValueRange(lte=7))),
)


@settings(max_examples=300, deadline=None)
@given(
    query=QUERIES, seeded=st.lists(st.tuples(NAMES, TAG_SETS, st.integers(0, 9), SECONDS), max_size=30), writes=WRITES
)
def test_an_updated_page_is_byte_for_byte_what_the_database_answers(
    query: MetricQuery, seeded: list[tuple[str, tuple[str, ...], int, int]], writes: list[tuple[Any, ...]]
) -> None:
    store = InMemoryMetricStore()

    def run(work: Any) -> Any:
        return asyncio.run(work)

    def read() -> ListingPage:
        return ListingPage.read(query, run(store.find(replace(query, limit=query.limit + SPARE_ITEMS))))

    run(store.insert([MetricInput(n, t, float(v), at(s)) for n, t, v, s in seeded]))
    page = read()
    for write in writes:
        existing = sorted(store.metrics)
        if write[0] == "post":
            _, name, tags, value, second = write
            (after,) = run(store.insert([MetricInput(name, tags, float(value), at(second))]))
            change = (None, after)
        elif not existing:
            continue
        elif write[0] == "put":
            _, which, name, tags, value, second = write
            replaced = MetricInput(name, tags, float(value), at(second))
            change = run(store.replace(existing[which % len(existing)], replaced))
        else:
            change = (run(store.delete(existing[write[1] % len(existing)])), None)
        before, after = change
        kept = page.apply(before and point(before), after and point(after))
        if not kept:
            page = read()  # dropped: the next read fills it again
            continue
        page.refresh()
        assert page.body == render_metrics(run(store.find(query)), query.limit)
        everything = run(store.find(replace(query, limit=10_000)))
        assert [item.json for item in page.items] == [point(m).json for m in everything[: len(page.items)]]
        assert page.complete <= (len(page.items) == len(everything))
