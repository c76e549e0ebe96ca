"""Log lines: the LOG_FORMAT setting, the text and JSON formats, and the request's and trace's ids on them."""

from __future__ import annotations

import logging
import re

import orjson
import pytest

from telemetry_server.config import load_settings
from telemetry_server.errors import ConfigurationError
from telemetry_server.logs import REQUEST_NUMBER, JsonFormatter, LogFormat, RequestFields, TextFormatter, request_id


def record(message: str = "stored %d points", *args: object) -> logging.LogRecord:
    made = logging.LogRecord("telemetry_server.cache", logging.WARNING, __file__, 7, message, args or (3,), None)
    RequestFields().filter(made)
    return made


def test_log_format_is_text_unless_json_is_asked() -> None:
    assert load_settings({}).log_format is LogFormat.TEXT
    assert load_settings({"LOG_FORMAT": "JSON"}).log_format is LogFormat.JSON
    with pytest.raises(ConfigurationError, match="LOG_FORMAT"):
        load_settings({"LOG_FORMAT": "xml"})


def test_a_line_outside_a_request_has_no_ids() -> None:
    line = TextFormatter("%(levelname)s %(name)s: %(message)s").format(record())

    assert line == "WARNING telemetry_server.cache: stored 3 points"


def test_a_line_within_a_request_ends_with_its_id() -> None:
    token = REQUEST_NUMBER.set(0x2A)
    try:
        made = record()
    finally:
        REQUEST_NUMBER.reset(token)

    line = TextFormatter("%(message)s").format(made)

    assert line == f"stored 3 points request_id={request_id(0x2A)}"
    assert request_id(0x2A).endswith("-2a")


def test_json_lines_are_one_object_each_in_utc() -> None:
    token = REQUEST_NUMBER.set(5)
    try:
        made = record('a "quoted"\nline %s', "here")
    finally:
        REQUEST_NUMBER.reset(token)

    line = JsonFormatter().format(made)

    assert "\n" not in line
    document = orjson.loads(line)
    assert document.keys() == {"time", "level", "logger", "message", "process", "request_id"}
    assert document["message"] == 'a "quoted"\nline here'
    assert document["level"] == "WARNING"
    assert document["request_id"] == request_id(5)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", document["time"])


def test_json_lines_carry_the_traceback() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        made = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, __import__("sys").exc_info())

    assert "RuntimeError: boom" in orjson.loads(JsonFormatter().format(made))["exception"]
