"""Errors become RFC 9457 problem responses in one place."""

from __future__ import annotations

import logging

import orjson
import pytest

from telemetry_server.errors import (
    MAX_LISTED_ERRORS,
    AppError,
    BadRequest,
    FieldError,
    MalformedJSON,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    StorageUnavailable,
    UnsupportedMediaType,
    ValidationFailed,
)
from telemetry_server.http.problems import problem_response
from telemetry_server.http.responses import PROBLEM_JSON


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (BadRequest("x"), 400, "bad_request"),
        (MalformedJSON("x"), 400, "malformed_json"),
        (NotFound("x"), 404, "not_found"),
        (MethodNotAllowed(["GET"]), 405, "method_not_allowed"),
        (PayloadTooLarge("x"), 413, "payload_too_large"),
        (UnsupportedMediaType("x"), 415, "unsupported_media_type"),
        (ValidationFailed([FieldError("name", "is required")]), 422, "validation_failed"),
        (StorageUnavailable("x"), 503, "storage_unavailable"),
    ],
)
def test_each_app_error_has_its_status(error: AppError, status: int, code: str) -> None:
    response = problem_response(error, "r-1")

    assert response.status == status
    assert response.content_type == PROBLEM_JSON
    body = orjson.loads(response.body)
    assert body["status"] == status
    assert body["type"] == f"/problems/{code}"
    assert body["title"] == error.title
    assert body["request_id"] == "r-1"


def test_detail_defaults_to_the_title() -> None:
    body = orjson.loads(problem_response(NotFound(), "r").body)

    assert body["detail"] == "Not Found"


def test_validation_lists_every_field_error_with_its_index() -> None:
    error = ValidationFailed([FieldError("name", "is required", 0), FieldError("value", "must be a number")])

    body = orjson.loads(problem_response(error, "r").body)

    assert body["errors"] == [
        {"field": "name", "message": "is required", "index": 0},
        {"field": "value", "message": "must be a number"},
    ]
    assert body["detail"] == "[0].name: is required; value: must be a number"


def test_validation_detail_can_be_given() -> None:
    error = ValidationFailed([FieldError("name", "is required", 3)], detail="1 of 4 metrics are invalid")

    assert orjson.loads(problem_response(error, "r").body)["detail"] == "1 of 4 metrics are invalid"


def test_a_long_error_list_is_cut_and_the_rest_counted() -> None:
    errors = [FieldError(f"tags[{n}]", "must be a string", 0) for n in range(MAX_LISTED_ERRORS + 7)]

    body = orjson.loads(problem_response(ValidationFailed(errors), "r").body)

    assert len(body["errors"]) == MAX_LISTED_ERRORS
    assert body["errors_omitted"] == 7


def test_a_short_error_list_says_nothing_is_omitted() -> None:
    body = orjson.loads(problem_response(ValidationFailed([FieldError("name", "is required")]), "r").body)

    assert "errors_omitted" not in body


def test_405_carries_allow() -> None:
    assert problem_response(MethodNotAllowed(["PUT", "GET"]), "r").headers == [(b"allow", b"GET, PUT")]


def test_503_carries_retry_after() -> None:
    assert problem_response(StorageUnavailable("down"), "r").headers == [(b"retry-after", b"1")]


def test_unknown_exception_is_a_bare_500_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    try:
        raise KeyError("password=hunter2")
    except KeyError as exc:
        error = exc

    with caplog.at_level(logging.ERROR, logger="telemetry_server.errors"):
        response = problem_response(error, "abc-7")

    assert response.status == 500
    body = orjson.loads(response.body)
    assert body == {
        "type": "/problems/internal",
        "title": "Internal Server Error",
        "status": 500,
        "detail": "an unexpected error occurred (request id abc-7)",
        "request_id": "abc-7",
    }
    assert b"hunter2" not in response.body
    (record,) = caplog.records
    assert "abc-7" in record.getMessage()
    assert record.exc_info is not None
    assert record.exc_info[1] is error
