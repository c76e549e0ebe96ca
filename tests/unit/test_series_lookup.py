"""The query parameters of /series/names and /series/tags."""

from __future__ import annotations

import pytest

from telemetry_server.errors import ValidationFailed
from telemetry_server.routes.series import DEFAULT_LIMIT, MAX_LIMIT, SeriesLookup, parse_series_lookup


def test_names_default_to_every_name_up_to_the_default_limit() -> None:
    assert parse_series_lookup([], need_name=False) == SeriesLookup("", "", DEFAULT_LIMIT)
    assert parse_series_lookup([("prefix", "cpu."), ("limit", "5")], need_name=False) == SeriesLookup("", "cpu.", 5)


def test_tags_need_a_valid_name() -> None:
    assert parse_series_lookup([("name", "cpu.load"), ("prefix", "host:")], need_name=True) == SeriesLookup(
        "cpu.load", "host:", DEFAULT_LIMIT
    )
    with pytest.raises(ValidationFailed) as missing:
        parse_series_lookup([("prefix", "host:")], need_name=True)
    assert [error.field for error in missing.value.errors] == ["name"]
    with pytest.raises(ValidationFailed) as bad:
        parse_series_lookup([("name", "cpu load")], need_name=True)
    assert [error.field for error in bad.value.errors] == ["name"]


@pytest.mark.parametrize("limit", ["0", str(MAX_LIMIT + 1), "-1", "ten", "²", "1" * 20, ""])
def test_a_limit_out_of_range_is_refused(limit: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        parse_series_lookup([("limit", limit)], need_name=False)
    assert [error.field for error in refused.value.errors] == ["limit"]


def test_unknown_repeated_and_overlong_parameters_are_each_named() -> None:
    with pytest.raises(ValidationFailed) as refused:
        parse_series_lookup([("name", "cpu"), ("prefix", "a"), ("prefix", "b"), ("x", "1")], need_name=False)
    assert sorted(error.field for error in refused.value.errors) == ["name", "prefix", "x"]
    with pytest.raises(ValidationFailed) as long_prefix:
        parse_series_lookup([("prefix", "a" * 201)], need_name=False)
    assert [error.field for error in long_prefix.value.errors] == ["prefix"]
