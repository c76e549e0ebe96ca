"""Validation of a metric as clients send it, field by field, and its JSON shape on the way out."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from telemetry_server.errors import MAX_LISTED_ERRORS, FieldError, ValidationFailed
from telemetry_server.models.metric import (
    MAX_NAME_LENGTH,
    MAX_TAG_LENGTH,
    MAX_TAGS,
    Metric,
    MetricInput,
    parse_metric,
    parse_metric_batch,
)

NOW = datetime(2026, 11, 27, 10, 0, 0, 123456, tzinfo=UTC)
VALID = {"name": "cpu.load", "tags": ["host:web-1", "env:prod"], "value": 0.5, "timestamp": "2026-11-27T09:00:00Z"}
ID = "0123456789abcdef01234567"


def errors_of(data: object, **kwargs: Any) -> dict[str, str]:
    """field → message, for data that must be refused."""
    with pytest.raises(ValidationFailed) as caught:
        parse_metric(data, NOW, **kwargs)
    assert caught.value.status == 422
    return {e.field: e.message for e in caught.value.errors}


def test_a_valid_metric() -> None:
    assert parse_metric(VALID, NOW) == MetricInput(
        "cpu.load", ("host:web-1", "env:prod"), 0.5, datetime(2026, 11, 27, 9, tzinfo=UTC)
    )


def test_tags_are_optional_and_timestamp_defaults_to_now_in_millis() -> None:
    metric = parse_metric({"name": "cpu", "value": 1}, NOW)

    assert metric.tags == ()
    assert metric.timestamp == NOW.replace(microsecond=123000)


def test_null_tags_and_timestamp_are_defaults() -> None:
    metric = parse_metric({"name": "cpu", "value": 1, "tags": None, "timestamp": None}, NOW)

    assert (metric.tags, metric.timestamp) == ((), NOW.replace(microsecond=123000))


def test_every_problem_is_reported_at_once() -> None:
    errors = errors_of({"name": "", "value": "x", "tags": "a", "timestamp": "soon", "unit": "%"})

    assert set(errors) == {"name", "value", "tags", "timestamp", "unit"}


@pytest.mark.parametrize("data", [[], "cpu", 1, None, True])
def test_not_an_object(data: object) -> None:
    assert errors_of(data) == {"$": "must be a JSON object"}


# name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (None, "is required"),
        ("", "must not be empty"),
        (5, "must be a string"),
        (["cpu"], "must be a string"),
        ("x" * (MAX_NAME_LENGTH + 1), f"at most {MAX_NAME_LENGTH}"),
        ("cpu load", "may hold only"),
        ("cpu\n", "may hold only"),
        ("$where", "may hold only"),
        ("températur", "may hold only"),
    ],
)
def test_bad_names(name: object, message: str) -> None:
    data = {**VALID, "name": name}

    assert message in errors_of(data)["name"]


def test_missing_name() -> None:
    assert errors_of({"value": 1}) == {"name": "is required"}


@pytest.mark.parametrize("name", ["a", "x" * MAX_NAME_LENGTH, "cpu.load", "http/requests:2xx", "a-b_C.9"])
def test_good_names(name: str) -> None:
    assert parse_metric({**VALID, "name": name}, NOW).name == name


# tags


@pytest.mark.parametrize(
    ("tags", "field", "message"),
    [
        ("host:a", "tags", "must be a list of strings"),
        ({"host": "a"}, "tags", "must be a list of strings"),
        ([f"t{i}" for i in range(MAX_TAGS + 1)], "tags", f"at most {MAX_TAGS}"),
        (["ok", 3], "tags[1]", "must be a string"),
        ([["nested"]], "tags[0]", "must be a string"),
        ([{"k": "v"}], "tags[0]", "must be a string"),
        ([None], "tags[0]", "must be a string"),
        ([""], "tags[0]", f"1 to {MAX_TAG_LENGTH}"),
        (["x" * (MAX_TAG_LENGTH + 1)], "tags[0]", f"1 to {MAX_TAG_LENGTH}"),
        (["a\tb"], "tags[0]", "control characters"),
        (["$gt"], "tags[0]", "must not start with '$'"),
        (["a", "b", "a"], "tags", "must not repeat"),
    ],
)
def test_bad_tags(tags: object, field: str, message: str) -> None:
    errors = errors_of({**VALID, "tags": tags})

    assert message in errors[field]


@pytest.mark.parametrize(
    "tags",
    [[], ["host:web-1"], [f"t{i}" for i in range(MAX_TAGS)], ["x" * MAX_TAG_LENGTH], ["a b", "ünïcode", "k:v:w"]],
)
def test_good_tags(tags: list[str]) -> None:
    assert parse_metric({**VALID, "tags": tags}, NOW).tags == tuple(tags)


# value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "is required"),
        (True, "must be a number"),
        (False, "must be a number"),
        ("1.5", "must be a number"),
        ([1], "must be a number"),
        ({"v": 1}, "must be a number"),
        (float("nan"), "must be a finite number"),
        (float("inf"), "must be a finite number"),
        (float("-inf"), "must be a finite number"),
        pytest.param(10**400, "must be a finite number", id="10**400"),
        pytest.param(-(10**400), "must be a finite number", id="-10**400"),
    ],
)
def test_bad_values(value: object, message: str) -> None:
    assert errors_of({**VALID, "value": value}) == {"value": message}


def test_missing_value() -> None:
    assert errors_of({"name": "cpu"}) == {"value": "is required"}


@pytest.mark.parametrize(
    ("value", "stored"),
    [(0, 0.0), (-3, -3.0), (1.5, 1.5), (2**64, float(2**64)), (1.7976931348623157e308, 1.7976931348623157e308)],
)
def test_good_values_become_floats(value: float, stored: float) -> None:
    result = parse_metric({**VALID, "value": value}, NOW).value

    assert result == stored
    assert isinstance(result, float)


# timestamp


@pytest.mark.parametrize(
    "timestamp",
    ["2026-11-27T09:00:00Z", "2026-11-27T10:00:00+01:00", 1795770000, 1795770000000, 1795770000000000, 1795770000.0],
)
def test_timestamp_forms(timestamp: object) -> None:
    assert parse_metric({**VALID, "timestamp": timestamp}, NOW).timestamp == datetime(2026, 11, 27, 9, tzinfo=UTC)


@pytest.mark.parametrize(
    "timestamp", ["tomorrow", "2026-11-27", "2026-11-27T09:00:00", True, -1, [1], pytest.param(10**400, id="10**400")]
)
def test_bad_timestamps(timestamp: object) -> None:
    assert "timestamp" in errors_of({**VALID, "timestamp": timestamp})


# unknown fields and the id


@pytest.mark.parametrize("field", ["unit", "Name", "_id", "$set"])
def test_unknown_fields_are_refused(field: str) -> None:
    assert "is not a known field" in errors_of({**VALID, field: 1})[field]


def test_an_unknown_field_name_is_cut_short_in_the_error() -> None:
    (field,) = errors_of({**VALID, "k" * 500: 1})

    assert field == "k" * 64


def test_id_is_unknown_on_create() -> None:
    assert "is not a known field" in errors_of({**VALID, "id": ID})["id"]


def test_id_in_a_replace_body_may_repeat_the_url() -> None:
    assert parse_metric({**VALID, "id": ID}, NOW, id_=ID).name == "cpu.load"


@pytest.mark.parametrize("other", ["f" * 24, "", None, 5, [ID]])
def test_id_in_a_replace_body_must_not_contradict_the_url(other: object) -> None:
    assert errors_of({**VALID, "id": other}, id_=ID) == {"id": "does not match the id in the URL"}


def test_errors_carry_the_batch_index() -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_metric({"name": ""}, NOW, index=4)

    assert {e.index for e in caught.value.errors} == {4}


# batches


def test_batch_of_valid_metrics() -> None:
    assert [m.value for m in parse_metric_batch([VALID, {**VALID, "value": 2}], NOW, 10)] == [0.5, 2.0]


def test_batch_is_refused_with_every_bad_index() -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_metric_batch([VALID, {"name": "cpu"}, VALID, "nope", {**VALID, "tags": [1, 2]}], NOW, 10)

    errors = [(e.index, e.field) for e in caught.value.errors]
    assert errors == [(1, "value"), (3, "$"), (4, "tags[0]"), (4, "tags[1]")]
    assert caught.value.detail == "3 of 5 metrics are invalid; none was stored"


def test_a_batch_full_of_mistakes_lists_the_first_and_counts_the_rest() -> None:
    every_tag_wrong = {"name": "cpu.load", "value": 1, "tags": [1] * MAX_TAGS}
    with pytest.raises(ValidationFailed) as caught:
        parse_metric_batch([VALID, *[every_tag_wrong] * 500], NOW, 1000)

    refused = caught.value
    assert len(refused.errors) == MAX_LISTED_ERRORS
    assert refused.errors[-1] == FieldError(f"tags[{MAX_LISTED_ERRORS - MAX_TAGS - 1}]", "must be a string", 2)
    assert refused.omitted == 500 * MAX_TAGS - MAX_LISTED_ERRORS
    assert refused.detail == "500 of 501 metrics are invalid; none was stored"


def test_one_metric_with_thousands_of_unknown_fields_lists_the_first() -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_metric({**VALID, **{f"x{n}": 0 for n in range(5000)}}, NOW)

    assert [e.field for e in caught.value.errors] == [f"x{n}" for n in range(MAX_LISTED_ERRORS)]
    assert caught.value.omitted == 5000 - MAX_LISTED_ERRORS


def test_empty_batch() -> None:
    with pytest.raises(ValidationFailed, match="at least one"):
        parse_metric_batch([], NOW, 10)


def test_batch_size_limit() -> None:
    assert len(parse_metric_batch([VALID] * 3, NOW, 3)) == 3
    with pytest.raises(ValidationFailed, match="at most 3 metrics, got 4"):
        parse_metric_batch([VALID] * 4, NOW, 3)


# output


def test_json_shape() -> None:
    metric = Metric(ID, "cpu", ("a", "b"), 1.0, datetime(2026, 11, 27, 9, 0, 0, 7000, tzinfo=UTC))

    assert metric.to_json() == {
        "id": ID,
        "name": "cpu",
        "tags": ["a", "b"],
        "value": 1.0,
        "timestamp": "2026-11-27T09:00:00.007Z",
    }
