"""The one place where errors become responses: RFC 9457 problem details for every AppError."""

from __future__ import annotations

import logging
from typing import Any

import orjson

from telemetry_server.errors import AppError
from telemetry_server.http.responses import PROBLEM_JSON, Response

log = logging.getLogger("telemetry_server.errors")


def problem_response(error: BaseException, request_id: str) -> Response:
    """Answer an AppError with its own status; log anything else and answer a bare 500."""
    if not isinstance(error, AppError):
        log.error("unhandled error in request %s", request_id, exc_info=error)
        error = AppError(f"an unexpected error occurred (request id {request_id})")
    elif error.status >= 500:
        log.warning("request %s: %s %s", request_id, error.code, error.detail)
    body: dict[str, Any] = {
        "type": f"/problems/{error.code}",
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
        "request_id": request_id,
        **error.extra(),
    }
    return Response(error.status, orjson.dumps(body), PROBLEM_JSON, error.headers())
