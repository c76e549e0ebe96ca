"""Timestamps: RFC 3339 strings and epoch numbers (unit by magnitude) in, RFC 3339 UTC milliseconds out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from telemetry_server.models.timestamps import (
    EARLIEST,
    format_timestamp,
    parse_timestamp,
    parse_timestamp_text,
    truncate_to_millis,
)

MOMENT = datetime(2025, 11, 27, 23, 58, 40, 123000, tzinfo=UTC)
EPOCH_MS = 1764287920123


@pytest.mark.parametrize(
    "text",
    [
        "2025-11-27T23:58:40.123Z",
        "2025-11-27T23:58:40.123+00:00",
        "2025-11-28T01:58:40.123+02:00",
        "2025-11-27T18:58:40.123-05:00",
        "2025-11-27T23:58:40.123456Z",
        "2025-11-27T23:58:40.1239Z",
    ],
)
def test_rfc3339_is_converted_to_utc_and_truncated_to_millis(text: str) -> None:
    assert parse_timestamp(text) == MOMENT


def test_rfc3339_without_fraction() -> None:
    assert parse_timestamp("2026-01-01T00:00:00Z") == datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2025-11-27",
        "23:58:40Z",
        "2025-11-27T25:00:00Z",
        "2025-13-27T10:00:00Z",
        "yesterdayT",
        "2025-11-27T10:00:00Z" + " " * 60,
        # ISO 8601 forms that are not RFC 3339, which datetime.fromisoformat would take
        "2026-W48-5T10:00:00Z",
        "2026-W48T10:00:00Z",
        "20261127T100000Z",
        "2026-11-27T10Z",
        "2026-11-27T10:00Z",
        "2026-11-27T10:00:00+0200",
        "2026-11-27T10:00:00+02",
        "2026-11-27T10:00:00,5Z",
        "2026-11-27 10:00:00Z",
        "\u0662\u0660\u0662\u0666-11-27T10:00:00Z",  # Arabic-Indic digits
        " 2026-11-27T10:00:00Z",
    ],
)
def test_malformed_strings_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_timestamp(text)


def test_lower_case_t_and_z_are_rfc3339_too() -> None:
    assert parse_timestamp("2025-11-27t23:58:40.123z") == MOMENT


def test_a_time_without_offset_is_refused() -> None:
    with pytest.raises(ValueError, match="UTC offset"):
        parse_timestamp("2025-11-27T10:00:00")


def test_before_1970_is_refused() -> None:
    with pytest.raises(ValueError, match="1970"):
        parse_timestamp("1969-12-31T23:59:59.999Z")


@pytest.mark.parametrize("text", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:30:00+01:00"])
def test_a_time_out_of_range_once_in_utc_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="out of range"):
        parse_timestamp(text)


def test_the_latest_representable_time() -> None:
    assert parse_timestamp("9999-12-31T23:59:59.999Z") == datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)


@pytest.mark.parametrize(
    "number",
    [
        EPOCH_MS / 1000,  # seconds, a binary float just below .123
        EPOCH_MS,  # milliseconds
        EPOCH_MS * 1000 + 999,  # microseconds, truncated
        float(EPOCH_MS * 1000),
        EPOCH_MS * 10**6 + 999_999,  # nanoseconds, truncated
        float(EPOCH_MS * 10**6),
    ],
)
def test_epoch_unit_is_read_from_the_magnitude(number: float) -> None:
    assert parse_timestamp(number) == MOMENT


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        (0, EARLIEST),
        (1.5, EARLIEST + timedelta(seconds=1.5)),
        (99_999_999_999, EARLIEST + timedelta(seconds=99_999_999_999)),  # the last second-sized number
        (100_000_000_000, EARLIEST + timedelta(milliseconds=100_000_000_000)),  # the first millisecond one
        (99_999_999_999_999, EARLIEST + timedelta(milliseconds=99_999_999_999_999)),
        (100_000_000_000_000, EARLIEST + timedelta(microseconds=100_000_000_000_000)),
        (10**17, EARLIEST + timedelta(microseconds=10**17 // 1000)),  # nanoseconds from here
    ],
)
def test_epoch_unit_boundaries(number: float, expected: datetime) -> None:
    assert parse_timestamp(number) == expected


@pytest.mark.parametrize(
    # 65831.404, 8422738.531 and 69348799745.87 times 1000 are each just below a whole number in binary.
    "millis",
    [1, 7, 123, 999, 65_831_404, 8_422_738_531, 1_700_000_000_007, 4_102_444_800_999, 69_348_799_745_870],
)
def test_epoch_seconds_keep_their_milliseconds(millis: int) -> None:
    assert parse_timestamp(millis / 1000) == EARLIEST + timedelta(milliseconds=millis)


@pytest.mark.parametrize("number", [-1, -0.001, float("nan"), float("inf"), float("-inf")])
def test_negative_and_non_finite_epochs_are_refused(number: float) -> None:
    with pytest.raises(ValueError, match="finite, non-negative"):
        parse_timestamp(number)


@pytest.mark.parametrize("number", [pytest.param(10**400, id="10**400"), 2**200, 1e308, 10**40])
def test_huge_epochs_are_out_of_range(number: float) -> None:
    with pytest.raises(ValueError, match="out of range"):
        parse_timestamp(number)


@pytest.mark.parametrize("value", [True, False])
def test_booleans_are_not_epochs(value: bool) -> None:
    with pytest.raises(ValueError, match="boolean"):
        parse_timestamp(value)


@pytest.mark.parametrize("value", [None, [2025], {"at": 1}, b"2025-11-27T10:00:00Z"])
def test_other_types_are_refused(value: object) -> None:
    with pytest.raises(ValueError, match="RFC 3339 string or an epoch number"):
        parse_timestamp(value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (str(EPOCH_MS), MOMENT),
        (str(EPOCH_MS / 1000), MOMENT),
        ("1.764287920123e9", MOMENT),
        ("0", EARLIEST),
        ("2025-11-27T23:58:40.123Z", MOMENT),
    ],
)
def test_text_is_an_epoch_number_or_rfc3339(text: str, expected: datetime) -> None:
    assert parse_timestamp_text(text) == expected


@pytest.mark.parametrize(
    "text",
    ["1_000", "\u0663", "\uff11\uff12", " 12", "12 ", "+12", "0x10", "nan", "inf", "Infinity", "1e", "."],
)
def test_text_that_float_would_take_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_timestamp_text(text)


def test_negative_text_epochs_say_why() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        parse_timestamp_text("-1")


def test_format_is_utc_with_milliseconds() -> None:
    assert format_timestamp(MOMENT) == "2025-11-27T23:58:40.123Z"
    assert format_timestamp(EARLIEST) == "1970-01-01T00:00:00.000Z"


def test_format_converts_other_offsets_to_utc() -> None:
    moment = datetime(2025, 11, 28, 1, 58, 40, 123999, tzinfo=timezone(timedelta(hours=2)))

    assert format_timestamp(moment) == "2025-11-27T23:58:40.123Z"


def test_format_then_parse_round_trips() -> None:
    assert parse_timestamp(format_timestamp(MOMENT)) == MOMENT


def test_truncate_to_millis() -> None:
    assert truncate_to_millis(MOMENT.replace(microsecond=123999)) == MOMENT
