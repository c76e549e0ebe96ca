"""Line protocol decoded into our metrics: fields, precisions, escapes, and what is refused and how."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from telemetry_server.errors import PayloadTooLarge, ValidationFailed
from telemetry_server.ingest.influxql import StatementRefused, answer_statements
from telemetry_server.ingest.line_protocol import Precision, decode_lines, parse_precision
from telemetry_server.models.metric import MetricInput

NOW = datetime(2026, 11, 28, 9, 0, 0, 123000, tzinfo=UTC)


def decode(text: str, precision: Precision = Precision.NANOSECONDS, max_points: int = 1000) -> list[MetricInput]:
    decoded = decode_lines(text.encode(), precision, NOW, max_points)
    assert decoded.dropped == 0, decoded.first_refusal
    return decoded.points


def test_each_numeric_field_is_a_metric_named_measurement_dot_field() -> None:
    points = decode("cpu,host=web-1,region=eu usage_idle=97.5,usage_user=2i,up=true,down=F 1795773600123456789")

    moment = datetime(2026, 11, 27, 10, 0, 0, 123000, tzinfo=UTC)
    tags = ("host:web-1", "region:eu")
    assert sorted(points, key=lambda p: p.name) == [
        MetricInput("cpu.down", tags, 0.0, moment),
        MetricInput("cpu.up", tags, 1.0, moment),
        MetricInput("cpu.usage_idle", tags, 97.5, moment),
        MetricInput("cpu.usage_user", tags, 2.0, moment),
    ]


def test_a_line_without_timestamp_is_now_and_blank_lines_and_comments_are_skipped() -> None:
    points = decode("# a comment\n\nmem free=1u\r\n   \nmem used=-2.5e3\n")

    assert [(p.name, p.value, p.timestamp) for p in points] == [("mem.free", 1.0, NOW), ("mem.used", -2500.0, NOW)]


@pytest.mark.parametrize(
    ("precision", "stamp", "expected"),
    [
        ("", 1795773600999999999, "2026-11-27T10:00:00.999"),
        ("n", 1795773600999999999, "2026-11-27T10:00:00.999"),
        ("u", 1795773600999999, "2026-11-27T10:00:00.999"),
        ("ms", 1795773600999, "2026-11-27T10:00:00.999"),
        ("s", 1795773600, "2026-11-27T10:00:00.000"),
        ("m", 29929560, "2026-11-27T10:00:00.000"),
        ("h", 498826, "2026-11-27T10:00:00.000"),
    ],
)
def test_timestamps_in_each_precision_are_truncated_to_milliseconds(precision: str, stamp: int, expected: str) -> None:
    (point,) = decode(f"m v=1 {stamp}", parse_precision(precision, v2=False))
    assert point.timestamp == datetime.fromisoformat(expected + "+00:00")


def test_v2_names_its_precisions_differently_and_others_are_refused() -> None:
    assert parse_precision("us", v2=True) is Precision.MICROSECONDS
    with pytest.raises(ValidationFailed, match="precision"):
        parse_precision("h", v2=True)
    with pytest.raises(ValidationFailed, match="precision"):
        parse_precision("weeks", v2=False)


def test_escapes_in_names_tags_and_fields_map_through_the_naming_rule() -> None:
    (point,) = decode(r"disk\ io,mount\ point=/var\,log,dev=sda1 busy\ ms=3 1795773600000000000")

    assert point.name == "disk_io.busy_ms"
    assert point.tags == ("dev:sda1", "mount_point:/var,log")


def test_bad_lines_are_refused_alone_and_the_first_is_named() -> None:
    body = b"cpu v=1\ncpu v=\nmem v=2\ncpu,host= v=3\nnet v=4 -5\n"
    decoded = decode_lines(body, Precision.NANOSECONDS, NOW, 1000)

    assert [p.name for p in decoded.points] == ["cpu.v", "mem.v"]
    assert decoded.bad_lines == 3
    assert decoded.dropped == 3
    assert decoded.first_refusal == "unable to parse 'cpu v=': failed to parse value of field"
    assert decoded.outcome().accepted == 2


def test_string_fields_are_refused_points_and_the_line_keeps_its_numbers() -> None:
    decoded = decode_lines(b'sys uptime=5i,uptime_format="0 days"', Precision.NANOSECONDS, NOW, 1000)

    assert [(p.name, p.value) for p in decoded.points] == [("sys.uptime", 5.0)]
    assert decoded.refused_fields == 1
    assert decoded.first_refusal is not None
    assert "the string field 'uptime_format' is not stored" in decoded.first_refusal


def test_lines_not_utf8_and_names_too_long_are_refused() -> None:
    body = b"ok v=1\nbad\xff v=1\n" + b"m " + b"f" * 250 + b"=1\n"
    decoded = decode_lines(body, Precision.NANOSECONDS, NOW, 1000)

    assert [p.name for p in decoded.points] == ["ok.v"]
    assert decoded.bad_lines == 1
    assert decoded.refused_fields == 1
    assert decoded.first_refusal is not None
    assert "not UTF-8" in decoded.first_refusal


def test_more_points_than_the_limit_refuse_the_whole_body() -> None:
    with pytest.raises(PayloadTooLarge, match="INGEST_MAX_POINTS"):
        decode_lines(b"m a=1,b=2\nm a=1,b=2\n", Precision.NANOSECONDS, NOW, 3)


def test_setup_statements_are_answered_as_influxdb_does_and_others_refused() -> None:
    assert answer_statements('CREATE DATABASE "telegraf"') == {"results": [{"statement_id": 0}]}
    answer = answer_statements("create database x; SHOW DATABASES")
    assert answer["results"][1]["series"][0]["values"] == [["telemetry"]]
    with pytest.raises(StatementRefused, match="only CREATE DATABASE"):
        answer_statements("SELECT * FROM cpu")
    with pytest.raises(StatementRefused, match="missing required parameter"):
        answer_statements(" ; ")
