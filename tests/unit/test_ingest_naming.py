"""The naming rule shared by every ingest protocol: foreign names and tags into ours."""

from __future__ import annotations

import pytest

from telemetry_server.errors import FieldErrors
from telemetry_server.ingest.naming import IngestOutcome, NameRefused, escape_name, metric_name, tag, tag_set
from telemetry_server.models.metric import check_name, check_tags


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (("cpu", "usage_idle"), "cpu.usage_idle"),
        (("http_requests_total",), "http_requests_total"),
        (("disk used", "free%"), "disk_used.free_"),
        (("système", "charge"), "syst_me.charge"),
        (("cpu", ""), "cpu"),
        (("a/b:c-d", "x"), "a/b:c-d.x"),
    ],
)
def test_metric_names_join_parts_and_escape_refused_characters(parts: tuple[str, ...], expected: str) -> None:
    name = metric_name(*parts)
    assert name == expected
    check_name(name, lambda field, message: pytest.fail(message))


def test_a_name_that_is_empty_or_too_long_is_refused_not_cut() -> None:
    with pytest.raises(NameRefused, match="empty"):
        metric_name("", "")
    with pytest.raises(NameRefused, match="longer than 200"):
        metric_name("m" * 150, "f" * 50)


def test_escape_name_keeps_allowed_names_as_they_are() -> None:
    name = "Abc_09.-:/"
    assert escape_name(name) is name


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("host", "web-1", "host:web-1"),
        ("url", "http://a:80/x y", "url:http://a:80/x y"),
        ("a:b", "v", "a_b:v"),
        ("$where", "v", "_where:v"),
        ("région", "île-de-france", "r_gion:île-de-france"),
        ("k", "tab\there", "k:tab_here"),
    ],
)
def test_tags_are_key_colon_value_with_the_key_escaped(key: str, value: str, expected: str) -> None:
    assert tag(key, value) == expected


def test_an_empty_value_is_no_tag_and_an_empty_key_is_refused() -> None:
    assert tag("host", "") is None
    with pytest.raises(NameRefused, match="empty key"):
        tag("", "v")
    with pytest.raises(NameRefused, match="longer than 200"):
        tag("k", "v" * 199)


def test_tag_sets_are_sorted_and_pass_our_tag_rules() -> None:
    tags = tag_set([("region", "eu"), ("host", "a"), ("empty", "")])
    assert tags == ("host:a", "region:eu")
    errors = FieldErrors()
    check_tags(list(tags), lambda field, message: errors.add(field, message))
    assert errors.count == 0


def test_tag_sets_refuse_too_many_tags_and_pairs_that_meet_once_escaped() -> None:
    with pytest.raises(NameRefused, match="at most 64"):
        tag_set((f"k{i}", "v") for i in range(65))
    with pytest.raises(NameRefused, match="two tags become a_b:v"):
        tag_set([("a b", "v"), ("a_b", "v")])


def test_outcomes_add_up_and_keep_the_first_refusal() -> None:
    total = IngestOutcome(3) + IngestOutcome(1, 2, "first") + IngestOutcome(0, 1, "second")
    assert total == IngestOutcome(4, 3, "first")
