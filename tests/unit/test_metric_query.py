"""The `GET /metrics` query: parameters, the JSON `filters` form, limits, order, cursors, cache keys."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl

import orjson
import pytest

from telemetry_server.errors import ValidationFailed
from telemetry_server.models.metric_query import (
    Cursor,
    MetricQuery,
    SortOrder,
    parse_metric_query,
)
from telemetry_server.models.point_id import PointId, is_point_id
from telemetry_server.models.timestamps import EARLIEST
from telemetry_server.services.metric_service import prepare_listing

ID = "0123456789abcdef01234567"
START = datetime(2026, 11, 27, 10, tzinfo=UTC)
END = datetime(2026, 11, 27, 11, tzinfo=UTC)


def parse(query: str, default_limit: int = 100, max_limit: int = 1000) -> MetricQuery:
    return parse_metric_query(parse_qsl(query, keep_blank_values=True), default_limit, max_limit)


def errors_of(query: str) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as caught:
        parse(query)
    return {e.field: e.message for e in caught.value.errors}


def test_defaults() -> None:
    assert parse("") == MetricQuery(limit=100)
    assert parse("", default_limit=7).limit == 7


def test_every_parameter() -> None:
    cursor = Cursor(START, ID).encode()

    query = parse(
        f"name=cpu.load&tag=host:a&tag=env:prod&from=2026-11-27T10:00:00Z&to=2026-11-27T11:00:00Z"
        f"&limit=5&sort=asc&cursor={cursor}"
    )

    assert query == MetricQuery("cpu.load", ("env:prod", "host:a"), START, END, 5, SortOrder.ASC, Cursor(START, ID))


def test_repeated_tags_are_all_kept_in_a_normal_order() -> None:
    assert parse("tag=b&tag=a&tag=c").tags == ("a", "b", "c")


def test_a_tag_given_twice_is_refused() -> None:
    assert "must not repeat" in errors_of("tag=a&tag=a")["tags"]


def test_tags_are_checked_like_a_metric_tag() -> None:
    assert "must not start with '$'" in errors_of("tag=$ne")["tags[0]"]
    assert "1 to" in errors_of("tag=")["tags[0]"]


def test_times_accept_epoch_numbers() -> None:
    query = parse(f"from={int(START.timestamp())}&to={int(END.timestamp() * 1000)}")

    assert (query.start, query.end) == (START, END)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("name=", "name"),
        ("name=cpu load", "name"),
        ("from=yesterday", "from"),
        ("to=nan", "to"),
        ("to=-5", "to"),
        ("from=%D9%A3", "from"),  # an Arabic-Indic 3, which float() reads as 3.0
        ("from=1_000", "from"),
        ("from=%201000", "from"),
        ("from=2026-W48-5T10:00:00Z", "from"),
        ("from=9999-12-31T23:59:59-01:00", "from"),
        ("from=2026-11-27T11:00:00Z&to=2026-11-27T10:00:00Z", "from"),
        ("from=2026-11-27T10:00:00Z&to=2026-11-27T10:00:00Z", "from"),
        ("sort=newest", "sort"),
        ("sort=DESC", "sort"),
        ("color=red", "color"),
        ("name=a&name=b", "name"),
        ("limit=1&limit=2", "limit"),
    ],
)
def test_bad_parameters(query: str, field: str) -> None:
    assert field in errors_of(query)


def test_every_bad_parameter_is_reported() -> None:
    assert set(errors_of("limit=0&sort=up&from=x&what=1")) == {"limit", "sort", "from", "what"}


# limit


@pytest.mark.parametrize("limit", ["1", "1000", "0042"])
def test_limit_within_bounds(limit: str) -> None:
    assert parse(f"limit={limit}").limit == int(limit)


@pytest.mark.parametrize(
    "limit", ["0", "1001", "-1", "+5", "1.5", "", "ten", " 5", "\u00b2", "\u0661\u0660", "9" * 5000]
)
def test_limit_out_of_bounds_or_not_a_whole_number(limit: str) -> None:
    assert errors_of(f"limit={limit}") == {"limit": "must be a whole number from 1 to 1000"}


# sort


def test_sort_orders() -> None:
    assert parse("sort=desc").order is SortOrder.DESC
    assert parse("sort=asc").order is SortOrder.ASC


# the JSON `filters` form


def test_filters_json_form() -> None:
    query = parse(
        "filters="
        + orjson.dumps({"name": "cpu", "tags": ["b", "a"], "from": "2026-11-27T10:00:00Z", "to": 1795777200}).decode()
    )

    assert query == MetricQuery("cpu", ("a", "b"), START, END)


def test_filters_tags_join_the_tag_parameters() -> None:
    assert parse('tag=c&filters={"tags": ["a"]}').tags == ("a", "c")


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ("{nope", "filters"),
        ('["cpu"]', "filters"),
        ('"cpu"', "filters"),
        ('{"colour": "red"}', "filters.colour"),
        ('{"tags": "a"}', "filters.tags"),
        ('{"tags": [1]}', "filters.tags"),
        ('{"name": 5}', "filters.name"),
        ('{"name": null}', "filters.name"),
        ('{"from": [1]}', "filters.from"),
        ('{"from": "yesterday"}', "from"),
        ('{"limit": 5}', "filters.limit"),
    ],
)
def test_bad_filters(raw: str, field: str) -> None:
    assert field in errors_of(f"filters={raw}")


def test_filters_too_many_tags() -> None:
    assert (
        "at most"
        in errors_of("filters=" + orjson.dumps({"tags": [f"t{i}" for i in range(65)]}).decode())["filters.tags"]
    )


def test_a_filter_may_not_repeat_a_parameter() -> None:
    assert errors_of('name=cpu&filters={"name": "mem"}') == {"filters.name": "is also given as the `name` parameter"}


def test_filters_may_be_given_once() -> None:
    assert "filters" in errors_of("filters={}&filters={}")


# cursors


def test_cursor_round_trips() -> None:
    cursor = Cursor(datetime(2026, 11, 27, 10, 0, 0, 123000, tzinfo=UTC), ID)

    token = cursor.encode()

    assert "=" not in token
    assert Cursor.decode(token) == cursor


@pytest.mark.parametrize("millis", [0, 1, 8_422_738_531, 1_764_287_920_123, 69_348_799_745_870, 253_402_300_799_999])
def test_cursor_keeps_every_millisecond(millis: int) -> None:
    cursor = Cursor(EARLIEST + timedelta(milliseconds=millis), ID)

    assert Cursor.decode(cursor.encode()) == cursor


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    "token",
    [
        "",
        "!!!",
        "abc",
        "é",
        b64("no-colon"),
        b64(f"abc:{ID}"),
        b64(f"-5:{ID}"),
        b64(f"{'9' * 400}:{ID}"),
        b64("1764287920123:not-an-id"),
        b64(f"1764287920123:{ID.upper()}"),
        base64.urlsafe_b64encode(b"\xff\xfe:" + ID.encode()).decode(),
    ],
)
def test_garbage_cursors_are_422(token: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        Cursor.decode(token)

    assert [(e.field, e.message) for e in caught.value.errors] == [("cursor", "is not a cursor this server issued")]
    assert "cursor" in errors_of(f"cursor={token}")


def test_is_point_id() -> None:
    for id_ in (ID, PointId(7, 1_764_237_600_000, 2**32 + 5).encode()):  # a migrated ObjectId, a new id
        assert is_point_id(id_)
        assert not is_point_id(id_.upper())
        assert not is_point_id(id_[:-1])
        assert not is_point_id(id_ + "0")
        assert not is_point_id("g" * len(id_))


# cache keys


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("tag=a&tag=b", "tag=b&tag=a"),
        ("name=cpu&tag=a", "tag=a&name=cpu"),
        ("from=2026-11-27T10:00:00Z", "from=2026-11-27T11:00:00%2B01:00"),
        ("from=2026-11-27T10:00:00Z", "from=1795773600"),
        ("from=2026-11-27T10:00:00Z", "from=1795773600000"),
        ("", "limit=100&sort=desc"),
        ('filters={"name": "cpu", "tags": ["a"]}', "name=cpu&tag=a"),
    ],
)
def test_one_query_spelled_two_ways_has_one_cache_key(one: str, other: str) -> None:
    assert parse(one).cache_key() == parse(other).cache_key()


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("name=cpu", "name=mem"),
        ("name=cpu", "tag=cpu"),
        ("tag=a", "tag=a&tag=b"),
        ("tag=a,b", "tag=a&tag=b"),
        ("tag=a|b", "tag=a&tag=b"),
        ("from=2026-11-27T10:00:00Z", "to=2026-11-27T10:00:00Z"),
        ("limit=5", "limit=6"),
        ("sort=asc", "sort=desc"),
        ("", f"cursor={Cursor(START, ID).encode()}"),
    ],
)
def test_different_queries_have_different_cache_keys(one: str, other: str) -> None:
    assert parse(one).cache_key() != parse(other).cache_key()


def test_prepared_listings_are_the_parsed_query_with_its_cache_key_and_dependency() -> None:
    short = prepare_listing("name=cpu&tag=region:eu&tag=host:a", 100, 1000)
    assert short.query == parse("name=cpu&tag=host:a&tag=region:eu")
    assert short.cache_key == short.query.cache_key()
    assert short.dependency == "n:cpu|t:host:a"
    assert prepare_listing("name=cpu&tag=region:eu&tag=host:a", 100, 1000) is short  # remembered
    long_one = "name=cpu&" + "&".join(f"tag=k{i}:{'v' * 20}" for i in range(30))
    assert prepare_listing(long_one, 100, 1000) == prepare_listing(long_one, 100, 1000)


def test_a_query_that_does_not_parse_is_refused_every_time() -> None:
    for _ in range(2):
        with pytest.raises(ValidationFailed):
            prepare_listing("limit=0", 100, 1000)
