"""The Prometheus HTTP query API (`/api/v1/query`, `query_range`, the label APIs, `metadata`, `status/buildinfo`,
`query_exemplars`), as Grafana's Prometheus data source, promtool and every Prometheus API client read it.

Answers, errors included, are in Prometheus' envelope (`status`, `data`, `errorType`, `error`, `warnings`), not
problem+json: clients show its `error` and decide by its `errorType`. Parameters come from the query string and,
for POST, from a form body (as Prometheus reads them: the body's first).
"""

from __future__ import annotations

from urllib.parse import parse_qsl

import orjson

from telemetry_server.auth.keys import Role
from telemetry_server.auth.policy import Access
from telemetry_server.errors import AppError, BadRequest, QueryTimedOut, excerpt
from telemetry_server.http.operation import Operation
from telemetry_server.http.request import Request
from telemetry_server.http.responses import JSON, Response
from telemetry_server.http.router import Route
from telemetry_server.models.prometheus_params import parse_duration, parse_time
from telemetry_server.openapi import json_content, text_param
from telemetry_server.promql.errors import PromQLError
from telemetry_server.services.prometheus_service import BUILD_INFO, InstantQuery, PrometheusService, RangeQuery

_FORM = b"application/x-www-form-urlencoded"
_EMPTY_LIST = orjson.dumps({"status": "success", "data": []})
# Prometheus' errorType for our errors that are not the engine's (which carry their own), by status.
_ERROR_TYPES = {400: "bad_data", 404: "not_found", 408: "timeout", 413: "bad_data", 415: "bad_data", 422: "execution"}

_ENVELOPE = json_content(
    {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"enum": ["success"]},
            "data": {},
            "warnings": {"type": "array", "items": {"type": "string"}},
        },
    }
)
_ERROR_CONTENT = json_content(
    {
        "type": "object",
        "required": ["status", "errorType", "error"],
        "properties": {"status": {"enum": ["error"]}, "errorType": {"type": "string"}, "error": {"type": "string"}},
    }
)
_ERRORS = (400, 401, 403, 408, 413, 415, 422, 429, 503)
_MATCH = {
    "name": "match[]",
    "in": "query",
    "description": 'Repeatable: a series selector (`up{job="api"}`); series matching any of them.',
    "schema": {"type": "array", "items": {"type": "string"}},
    "style": "form",
    "explode": True,
}
_START = text_param("start", "Accepted; the label APIs answer from every series known (the series index).")
_END = text_param("end", "Accepted, as `start`.")
_FORM_BODY = {"type": "object", "additionalProperties": {"type": "string"}}


def _operation(summary: str, parameters: list[dict[str, object]], *, body: bool = False) -> Operation:
    return Operation(
        summary,
        {200: ("Prometheus' envelope: `{status: success, data, warnings?}`.", _ENVELOPE)},
        _ERRORS,
        parameters=parameters,
        body=_FORM_BODY if body else None,
        body_types=("application/x-www-form-urlencoded",),
        error_content=_ERROR_CONTENT,
    )


_QUERY = _operation(
    "PromQL instant query (docs/promql.md): `data` is `{resultType, result}`. Also POST with a form body.",
    [
        text_param("query", "A PromQL expression."),
        text_param("time", "RFC 3339 or Unix seconds (decimals allowed); default now."),
        text_param("timeout", "A duration (`10s`, or seconds); at most PROMQL_TIMEOUT."),
    ],
)
_QUERY_RANGE = _operation(
    "PromQL range query: `data` is `{resultType: matrix, result}`. Also POST with a form body.",
    [
        text_param("query", "A PromQL expression."),
        text_param("start", "RFC 3339 or Unix seconds."),
        text_param("end", "RFC 3339 or Unix seconds."),
        text_param("step", "A duration (`15s`) or seconds; at most 11,000 steps."),
        text_param("timeout", "A duration; at most PROMQL_TIMEOUT."),
    ],
)
_LIMIT = text_param("limit", "At most this many items (0: all).")
_LABELS = _operation(
    "Label names of the series matching any `match[]` (of every series without).", [_MATCH, _START, _END, _LIMIT]
)
_LABEL_VALUES = _operation(
    "Values of one label among the series matching any `match[]`.",
    [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}, _MATCH, _START, _END, _LIMIT],
)
_SERIES = _operation("Label sets of the series matching any `match[]` (at least one).", [_MATCH, _START, _END, _LIMIT])
_METADATA = _operation(
    "Every metric name, of type `unknown` (our metrics carry no type, help or unit).",
    [text_param("metric", "One name."), _LIMIT],
)
_BUILDINFO = _operation("The Prometheus release this API answers as (clients choose their calls by it).", [])
_EXEMPLARS = _operation("Exemplars: none are stored, so always an empty list.", [text_param("query", "Ignored.")])


class PrometheusResource:
    def __init__(self, prometheus: PrometheusService) -> None:
        self._prometheus = prometheus

    async def query(self, request: Request) -> Response:
        params = await _params(request)
        time_text = _one(params, "time")
        time_ms = self._prometheus.clock_ms() if time_text is None else parse_time(time_text, "time")
        query = InstantQuery(_required(params, "query"), time_ms)
        return _ok(await self._prometheus.query(query, _timeout(params)))

    async def query_range(self, request: Request) -> Response:
        params = await _params(request)
        query = RangeQuery(
            _required(params, "query"),
            parse_time(_required(params, "start"), "start"),
            parse_time(_required(params, "end"), "end"),
            parse_duration(_required(params, "step"), "step"),
        )
        return _ok(await self._prometheus.query(query, _timeout(params)))

    async def labels(self, request: Request) -> Response:
        params = await _params(request)
        return _ok(await self._prometheus.label_names(params.get("match[]", []), _limit(params)))

    async def label_values(self, request: Request) -> Response:
        params = await _params(request)
        name = request.params["name"]
        return _ok(await self._prometheus.label_values(name, params.get("match[]", []), _limit(params)))

    async def series(self, request: Request) -> Response:
        params = await _params(request)
        return _ok(await self._prometheus.series(params.get("match[]", []), _limit(params)))

    async def metadata(self, request: Request) -> Response:
        params = await _params(request)
        return _ok(await self._prometheus.metadata(_one(params, "metric"), _limit(params)))

    async def buildinfo(self, request: Request) -> Response:
        return _ok(BUILD_INFO)

    async def exemplars(self, request: Request) -> Response:
        return _ok(_EMPTY_LIST)

    def routes(self) -> list[Route[Access]]:
        get_post = ("GET", "POST")
        table: list[tuple[str, tuple[str, ...], object, str, Operation]] = [
            ("/api/v1/query", get_post, self.query, "prometheus_query", _QUERY),
            ("/api/v1/query_range", get_post, self.query_range, "prometheus_query_range", _QUERY_RANGE),
            ("/api/v1/labels", get_post, self.labels, "prometheus_labels", _LABELS),
            ("/api/v1/label/{name}/values", ("GET",), self.label_values, "prometheus_label_values", _LABEL_VALUES),
            ("/api/v1/series", get_post, self.series, "prometheus_series", _SERIES),
            ("/api/v1/metadata", ("GET",), self.metadata, "prometheus_metadata", _METADATA),
            ("/api/v1/status/buildinfo", ("GET",), self.buildinfo, "prometheus_buildinfo", _BUILDINFO),
            ("/api/v1/query_exemplars", get_post, self.exemplars, "prometheus_query_exemplars", _EXEMPLARS),
        ]
        routes: list[Route[Access]] = []
        for path, methods, handler, name, operation in table:
            for method in methods:
                # One route per method: the POST forms document their body, the GETs none.
                declared = operation if method == "POST" else _without_body(operation)
                routes.append(
                    Route(
                        path,
                        (method,),
                        handler,  # type: ignore[arg-type]
                        name if method == "GET" else f"{name}_post",
                        role=Role.READ,
                        operation=declared,
                        problem_body=prometheus_error,
                    )
                )
        return routes


def _without_body(operation: Operation) -> Operation:
    return Operation(
        operation.summary,
        operation.responses,
        operation.errors,
        operation.parameters,
        error_content=operation.error_content,
    )


def prometheus_error(request: Request, error: AppError, request_id: str) -> tuple[bytes, bytes]:
    """Prometheus' error envelope for any error of these routes; the status stays the error's own."""
    if isinstance(error, PromQLError):
        error_type = error.code
    elif isinstance(error, QueryTimedOut):
        error_type = "timeout"
    elif error.status >= 500:
        error_type = "unavailable" if error.status == 503 else "internal"
    else:
        error_type = _ERROR_TYPES.get(error.status, "bad_data")
    document = {"status": "error", "errorType": error_type, "error": f"{error.detail} (request id {request_id})"}
    return orjson.dumps(document), JSON


def _ok(body: bytes) -> Response:
    return Response(200, body, JSON)


async def _params(request: Request) -> dict[str, list[str]]:
    """Every parameter's values: a POST's form body first, then the query string (Prometheus' order)."""
    found: dict[str, list[str]] = {}
    if request.method == "POST" and request.media_type == _FORM:
        for key, value in parse_qsl((await request.body()).decode(errors="replace"), keep_blank_values=True):
            found.setdefault(key, []).append(value)
    for key, value in request.query:
        found.setdefault(key, []).append(value)
    return found


def _one(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    return values[0] if values else None


def _required(params: dict[str, list[str]], name: str) -> str:
    value = _one(params, name)
    if not value:
        raise BadRequest(f"invalid parameter {name!r}: missing or empty")
    return value


def _limit(params: dict[str, list[str]]) -> int | None:
    """`limit`: at most this many items; 0 or absent, all (as Prometheus reads it)."""
    text = _one(params, "limit")
    if not text:
        return None
    if not text.isdigit():
        raise BadRequest(f"invalid parameter 'limit': {excerpt(text)!r} is not a non-negative integer")
    return int(text) or None


def _timeout(params: dict[str, list[str]]) -> float | None:
    text = _one(params, "timeout")
    if text is None:
        return None
    millis = parse_duration(text, "timeout")
    if millis <= 0:
        raise BadRequest("invalid parameter 'timeout': must be positive")
    return millis / 1000
