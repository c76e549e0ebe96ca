"""The OpenAPI 3.1 description of every endpoint, served at `GET /openapi.json`; a unit test keeps it true."""

from __future__ import annotations

from typing import Any

from telemetry_server.auth.keys import MAX_KEY_NAME_LENGTH
from telemetry_server.auth.policy import required_role
from telemetry_server.models.aggregation import AGGREGATE_PATH, AggregateFn
from telemetry_server.models.metric import MAX_NAME_LENGTH, MAX_TAG_LENGTH, MAX_TAGS
from telemetry_server.models.value_range import VALUE_PARAMS
from telemetry_server.prompt.words import MAX_PROMPT_LENGTH

Schema = dict[str, Any]

_PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
_ERRORS = {
    400: "The request is malformed (e.g. the body is not JSON).",
    401: "No valid API key: missing, malformed, unknown or revoked (same answer for each).",
    403: "The API key's role is too small for this endpoint.",
    404: "No such resource.",
    408: "The body did not arrive within HTTP_BODY_TIMEOUT_MS.",
    413: "The body is larger than MAX_BODY_BYTES.",
    415: "The body is not application/json.",
    422: "The input is invalid; `errors` lists every field and reason.",
    429: "Rate limited; retry after `Retry-After` seconds.",
    503: "A database is unreachable; retry after `Retry-After` seconds.",
}
_READ_ERRORS = (401, 403, 422, 429, 503)
_BODY_ERRORS = (400, 401, 403, 408, 413, 415, 422, 429, 503)


def _json(schema: Schema) -> Schema:
    return {"application/json": {"schema": schema}}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _operation(
    where: tuple[str, str],
    name: str,
    summary: str,
    responses: dict[int, tuple[str, Schema | None]],
    errors: tuple[int, ...],
    *,
    parameters: list[Schema] | None = None,
    body: Schema | None = None,
) -> Schema:
    """One operation; the route name is its operationId, and the role it needs decides its security."""
    role = required_role(name, where[0], [where[1].upper()])
    operation: Schema = {"operationId": name, "summary": summary}
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = {"required": True, "content": _json(body)}
    out: Schema = {}
    for status, (description, content) in responses.items():
        out[str(status)] = {"description": description, **({"content": content} if content else {})}
    for status in errors:
        if role is None and status in (401, 403):
            continue
        out.setdefault(str(status), {"description": _ERRORS[status], "content": _PROBLEM})
    operation["responses"] = out
    if role is None:
        operation["security"] = []
    else:
        operation["x-required-role"] = role.value
        operation["security"] = [{"bearer": []}, {"token": []}]
    return operation


_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
_METRIC_QUERY: list[Schema] = [
    {"name": "name", "in": "query", "schema": _ref("MetricName")},
    {
        "name": "tag",
        "in": "query",
        "description": "Repeatable: every tag given must be on the metric.",
        "schema": {"type": "array", "items": _ref("Tag"), "maxItems": MAX_TAGS},
        "style": "form",
        "explode": True,
    },
    {"name": "from", "in": "query", "description": "Inclusive; RFC 3339 or epoch.", "schema": {"type": "string"}},
    {"name": "to", "in": "query", "description": "Exclusive; RFC 3339 or epoch.", "schema": {"type": "string"}},
    {
        "name": "limit",
        "in": "query",
        "description": "Page size, up to MAX_PAGE_SIZE (default DEFAULT_PAGE_SIZE).",
        "schema": {"type": "integer", "minimum": 1},
    },
    {"name": "sort", "in": "query", "schema": {"type": "string", "enum": ["desc", "asc"]}},
    {"name": "cursor", "in": "query", "description": "The `next` of the previous page.", "schema": {"type": "string"}},
    {
        "name": "filters",
        "in": "query",
        "description": 'A JSON object: {"name": ..., "tags": [...], "from": ..., "to": ...}.',
        "schema": {"type": "string"},
    },
]

_METRIC_QUERY += [{"name": p, "in": "query", "schema": {"type": "number"}} for p in VALUE_PARAMS]


def _text(name: str, description: str) -> Schema:
    return {"name": name, "in": "query", "description": description, "schema": {"type": "string"}}


_AGGREGATE_QUERY: list[Schema] = [
    {"name": "fn", "in": "query", "schema": {"type": "string", "enum": [fn.value for fn in AggregateFn]}},
    _METRIC_QUERY[0],
    _text("name_prefix", "Every metric whose name starts with this."),
    _METRIC_QUERY[1],
    _METRIC_QUERY[2],
    _METRIC_QUERY[3],
    _text("range", "A window ending now, e.g. 1h, 7d."),
    _text("bucket", "Group into time buckets of this width, e.g. 5m."),
    _text("group_by", "`name` or a tag key."),
    {"name": "top", "in": "query", "schema": {"type": "integer", "minimum": 1}},
    _text("order", "asc or desc."),
    _text("tz", "An IANA time zone for calendar buckets (default UTC)."),
    *_METRIC_QUERY[-len(VALUE_PARAMS) :],
]

_SCHEMAS: Schema = {
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details.",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "request_id": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["field", "message"],
                    "properties": {
                        "field": {"type": "string"},
                        "message": {"type": "string"},
                        "index": {"type": "integer"},
                    },
                },
            },
        },
    },
    "MetricName": {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_NAME_LENGTH,
        "pattern": "^[A-Za-z0-9_.:/-]+$",
    },
    "Tag": {"type": "string", "minLength": 1, "maxLength": MAX_TAG_LENGTH},
    "MetricInput": {
        "type": "object",
        "required": ["name", "value"],
        "additionalProperties": False,
        "properties": {
            "name": _ref("MetricName"),
            "tags": {"type": "array", "items": _ref("Tag"), "maxItems": MAX_TAGS, "uniqueItems": True},
            "value": {"type": "number"},
            "timestamp": {
                "description": "RFC 3339, or epoch seconds/ms/µs/ns; default: when received.",
                "type": ["string", "number", "null"],
            },
        },
    },
    "Metric": {
        "type": "object",
        "required": ["id", "name", "tags", "value", "timestamp"],
        "properties": {
            "id": {"type": "string", "pattern": "^[0-9a-f]{24}$"},
            "name": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "value": {"type": "number"},
            "timestamp": {"type": "string", "format": "date-time"},
        },
    },
    "MetricPage": {
        "type": "object",
        "required": ["items", "next"],
        "properties": {
            "items": {"type": "array", "items": _ref("Metric")},
            "next": {"type": ["string", "null"], "description": "Pass as `cursor` for the next page."},
        },
    },
    "BatchCreated": {
        "type": "object",
        "required": ["count", "ids"],
        "properties": {"count": {"type": "integer"}, "ids": {"type": "array", "items": {"type": "string"}}},
    },
    "KeyRequest": {
        "type": "object",
        "required": ["role"],
        "additionalProperties": False,
        "properties": {
            "role": {"type": "string", "enum": ["read", "write", "admin"]},
            "name": {"type": "string", "maxLength": MAX_KEY_NAME_LENGTH},
        },
    },
    "ApiKey": {
        "type": "object",
        "required": ["id", "name", "role", "created_at", "revoked_at"],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "role": {"type": "string", "enum": ["read", "write", "admin"]},
            "created_at": {"type": "string", "format": "date-time"},
            "revoked_at": {"type": ["string", "null"], "format": "date-time"},
        },
    },
}
_SCHEMAS["CreatedKey"] = {
    "allOf": [
        _ref("ApiKey"),
        {
            "type": "object",
            "required": ["key"],
            "properties": {"key": {"type": "string", "description": "The key itself: shown this once."}},
        },
    ]
}


def build_spec() -> Schema:
    paths: Schema = {
        "/healthz": {
            "get": _operation(
                ("/healthz", "get"),
                "healthz",
                "Liveness: the process answers.",
                {200: ("Alive.", _json({"type": "object", "properties": {"status": {"const": "ok"}}}))},
                (),
            )
        },
        "/readyz": {
            "get": _operation(
                ("/readyz", "get"),
                "readyz",
                "Readiness: MongoDB answers (Redis is reported, not required).",
                {
                    200: ("Ready.", _json(_ref("Readiness"))),
                    503: ("MongoDB is unreachable.", _json(_ref("Readiness"))),
                },
                (),
            )
        },
        "/openapi.json": {
            "get": _operation(
                ("/openapi.json", "get"),
                "openapi",
                "This document.",
                {200: ("OpenAPI 3.1.", _json({"type": "object"}))},
                (),
            )
        },
        "/metrics": {
            "get": _operation(
                ("/metrics", "get"),
                "list_metrics",
                "List metrics, newest first, a page at a time.",
                {200: ("A page of metrics.", _json(_ref("MetricPage")))},
                _READ_ERRORS,
                parameters=_METRIC_QUERY,
            ),
            "post": _operation(
                ("/metrics", "post"),
                "create_metrics",
                "Store one metric, or a batch (up to MAX_BATCH_SIZE) all or nothing.",
                {201: ("Stored.", _json({"oneOf": [_ref("Metric"), _ref("BatchCreated")]}))},
                _BODY_ERRORS,
                body={
                    "oneOf": [
                        _ref("MetricInput"),
                        {"type": "array", "items": _ref("MetricInput"), "minItems": 1},
                    ]
                },
            ),
        },
        AGGREGATE_PATH: {
            "get": _operation(
                (AGGREGATE_PATH, "get"),
                "aggregate_metrics",
                "Aggregate metrics (count, sum, avg, min, max, percentiles), optionally by bucket or group.",
                {200: ("The aggregate.", _json({"type": "object"}))},
                _READ_ERRORS,
                parameters=_AGGREGATE_QUERY,
            )
        },
        "/query": {
            "get": _operation(
                ("/query", "get"),
                "query_prompt",
                "Ask in words, e.g. `average cpu.load over the last hour by host`.",
                {200: ("The answer, with the structured query it was read as.", _json({"type": "object"}))},
                _READ_ERRORS,
                parameters=[
                    {
                        "name": "prompt",
                        "in": "query",
                        "required": True,
                        "description": f"At most {MAX_PROMPT_LENGTH} characters.",
                        "schema": {"type": "string"},
                    },
                    _text("tz", "An IANA time zone (default UTC)."),
                ],
            )
        },
        "/metrics/{id}": {
            "get": _operation(
                ("/metrics/{id}", "get"),
                "get_metric",
                "Read one metric.",
                {200: ("The metric.", _json(_ref("Metric")))},
                (401, 403, 404, 429, 503),
                parameters=[_ID],
            ),
            "put": _operation(
                ("/metrics/{id}", "put"),
                "replace_metric",
                "Replace one metric (the body may repeat the id).",
                {200: ("The metric as stored.", _json(_ref("Metric")))},
                (*_BODY_ERRORS, 404),
                parameters=[_ID],
                body=_ref("MetricInput"),
            ),
            "delete": _operation(
                ("/metrics/{id}", "delete"),
                "delete_metric",
                "Delete one metric.",
                {204: ("Deleted.", None)},
                (401, 403, 404, 429, 503),
                parameters=[_ID],
            ),
        },
        "/stats": {
            "get": _operation(
                ("/stats", "get"),
                "stats",
                "Server statistics across all workers.",
                {200: ("Statistics.", _json({"type": "object"}))},
                (401, 403, 429, 503),
            )
        },
        "/internal/metrics": {
            "get": _operation(
                ("/internal/metrics", "get"),
                "internal_metrics",
                "Server statistics in the Prometheus text format.",
                {200: ("Prometheus exposition.", {"text/plain": {"schema": {"type": "string"}}})},
                (401, 403, 429, 503),
            )
        },
        "/admin/keys": {
            "post": _operation(
                ("/admin/keys", "post"),
                "create_key",
                "Create an API key; the key is in this answer only.",
                {201: ("Created.", _json(_ref("CreatedKey")))},
                _BODY_ERRORS,
                body=_ref("KeyRequest"),
            ),
            "get": _operation(
                ("/admin/keys", "get"),
                "list_keys",
                "List API keys (never their secrets).",
                {
                    200: (
                        "Every key, revoked ones too.",
                        _json({"type": "object", "properties": {"items": {"type": "array", "items": _ref("ApiKey")}}}),
                    )
                },
                (401, 403, 429, 503),
            ),
        },
        "/admin/keys/{id}": {
            "delete": _operation(
                ("/admin/keys/{id}", "delete"),
                "revoke_key",
                "Revoke an API key; every worker refuses it within a second.",
                {200: ("The revoked key.", _json(_ref("ApiKey")))},
                (401, 403, 404, 429, 503),
                parameters=[_ID],
            )
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "telemetry-server",
            "version": "0.1.0",
            "description": "Collect, query and manage metrics. Errors are RFC 9457 problem details.",
        },
        "paths": paths,
        "components": {
            "schemas": {
                **_SCHEMAS,
                "Readiness": {
                    "type": "object",
                    "required": ["status", "mongo", "redis"],
                    "properties": {
                        "status": {"enum": ["ready", "unavailable"]},
                        "mongo": {"enum": ["up", "down"]},
                        "redis": {"enum": ["up", "down"]},
                    },
                },
            },
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "`Authorization: Bearer <key>`"},
                "token": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "InfluxDB style: `Authorization: Token <key>`",
                },
            },
        },
    }
