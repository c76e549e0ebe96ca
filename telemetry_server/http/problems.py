"""The one place where errors become responses: RFC 9457 problem details for every AppError."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson

from telemetry_server.errors import AppError
from telemetry_server.http.responses import PROBLEM_JSON, Response

log = logging.getLogger("telemetry_server.errors")


# A route whose protocol words its errors otherwise (OTLP's google.rpc.Status) gives its own body: (body, media
# type) for an error and the request id. Status and headers stay the error's.
ProblemBody = Callable[[AppError, str], tuple[bytes, bytes]]


def problem_response(error: BaseException, request_id: str, body: ProblemBody | None = None) -> Response:
    """Answer an AppError with its own status; log anything else and answer a bare 500."""
    if not isinstance(error, AppError):
        log.error("unhandled error in request %s", request_id, exc_info=error)
        error = AppError(f"an unexpected error occurred (request id {request_id})")
    elif error.status >= 500:
        log.warning("request %s: %s %s", request_id, error.code, error.detail)
    content, media_type = (body or problem_json)(error, request_id)
    return Response(error.status, content, media_type, error.headers())


def problem_json(error: AppError, request_id: str) -> tuple[bytes, bytes]:
    """RFC 9457 problem details."""
    document: dict[str, Any] = {
        "type": f"/problems/{error.code}",
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
        "request_id": request_id,
        **error.extra(),
    }
    return orjson.dumps(document), PROBLEM_JSON
