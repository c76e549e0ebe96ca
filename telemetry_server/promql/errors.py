"""PromQL's errors, each carrying the `errorType` and status Prometheus' HTTP API answers with."""

from __future__ import annotations

from telemetry_server.errors import AppError


class PromQLError(AppError):
    """Base of the engine's errors; `code` is Prometheus' errorType."""

    status, code, title = 422, "execution", "Execution Error"


class BadData(PromQLError):
    """A parse error or a feature outside the supported subset; the message names the part."""

    status, code, title = 400, "bad_data", "Bad Data"


class Execution(PromQLError):
    """The query is valid but cannot be evaluated (e.g. many-to-many matching, duplicate output series)."""

    status, code, title = 422, "execution", "Execution Error"


class Timeout(PromQLError):
    """The query ran past its time limit."""

    status, code, title = 503, "timeout", "Query Timeout"


class TooLarge(PromQLError):
    """The query would touch more series or points than its limits allow."""

    status, code, title = 422, "execution", "Query Too Large"
