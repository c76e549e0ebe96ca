"""The series index: names, name prefixes and tags resolved to series ids by their postings."""

from __future__ import annotations

import pytest

from telemetry_server.storage.series_index import Series, SeriesIndex

SERIES = [
    Series(1, "cpu.load", ("host:a", "env:prod")),
    Series(2, "cpu.load", ("host:b", "env:prod")),
    Series(3, "cpu.load", ("env:prod", "host:a")),  # one tag set in another order: another series
    Series(4, "cpu.idle", ("host:a",)),
    Series(5, "mem.used", ("host:a", "env:dev")),
    Series(6, "cpu", ()),
]


@pytest.fixture
def index() -> SeriesIndex:
    index = SeriesIndex()
    index.add_all(SERIES)
    return index


def test_no_filter_is_every_series_present_and_future(index: SeriesIndex) -> None:
    assert index.match() is None


def test_by_name(index: SeriesIndex) -> None:
    assert index.match("cpu.load") == {1, 2, 3}
    assert index.match("cpu") == {6}
    assert index.match("disk") == set()


def test_by_name_prefix(index: SeriesIndex) -> None:
    assert index.match(name_prefix="cpu.") == {1, 2, 3, 4}
    assert index.match(name_prefix="cpu") == {1, 2, 3, 4, 6}
    assert index.match(name_prefix="") == {1, 2, 3, 4, 5, 6}
    assert index.match(name_prefix="cpu.z") == set()
    assert index.match(name_prefix="zz") == set()


def test_a_name_wins_over_a_prefix(index: SeriesIndex) -> None:
    assert index.match("mem.used", "cpu") == {5}


def test_tags_intersect_whatever_their_order(index: SeriesIndex) -> None:
    assert index.match(tags=("host:a",)) == {1, 3, 4, 5}
    assert index.match(tags=("env:prod", "host:a")) == {1, 3}
    assert index.match(tags=("host:a", "env:prod")) == {1, 3}
    assert index.match(tags=("host:a", "env:nowhere")) == set()


def test_name_prefix_and_tags_intersect(index: SeriesIndex) -> None:
    assert index.match("cpu.load", tags=("host:a",)) == {1, 3}
    assert index.match(name_prefix="cpu", tags=("host:a",)) == {1, 3, 4}
    assert index.match("cpu", tags=("host:a",)) == set()


def test_match_answers_a_copy(index: SeriesIndex) -> None:
    index.match("cpu.load").add(99)  # type: ignore[union-attr]

    assert index.match("cpu.load") == {1, 2, 3}


def test_lookups_by_id_and_by_name_and_tags(index: SeriesIndex) -> None:
    assert len(index) == 6
    assert 4 in index
    assert 7 not in index
    assert index.get(2) == SERIES[1]
    assert index.get(7) is None
    assert index.find("cpu.load", ("env:prod", "host:a")) == 3
    assert index.find("cpu.load", ("host:a",)) is None
    assert index.names() == ["cpu", "cpu.idle", "cpu.load", "mem.used"]


def test_adding_a_known_id_again_changes_nothing(index: SeriesIndex) -> None:
    index.add(Series(1, "other", ("x:y",)))

    assert index.get(1) == SERIES[0]
    assert index.match("other") == set()
    assert len(index) == 6


def test_names_with_prefix_in_order_up_to_the_limit(index: SeriesIndex) -> None:
    assert index.names_with_prefix("cpu", 10) == ["cpu", "cpu.idle", "cpu.load"]
    assert index.names_with_prefix("cpu.", 1) == ["cpu.idle"]
    assert index.names_with_prefix("", 2) == ["cpu", "cpu.idle"]
    assert index.names_with_prefix("disk", 10) == []
    assert index.names_with_prefix("mem.used.x", 10) == []


def test_tags_of_a_name_once_each_in_order(index: SeriesIndex) -> None:
    assert index.tags_of("cpu.load", "", 10) == ["env:prod", "host:a", "host:b"]
    assert index.tags_of("cpu.load", "host:", 1) == ["host:a"]
    assert index.tags_of("cpu", "", 10) == []
    assert index.tags_of("disk", "", 10) == []
