"""The OpenAPI 3.1 document, built from the route table, and the schema fragments the routes' operations share:
components, common parameters and the description of each problem+json answer."""

from __future__ import annotations

from collections.abc import Iterable

from telemetry_server.auth.keys import MAX_KEY_NAME_LENGTH
from telemetry_server.auth.policy import Access
from telemetry_server.http.operation import Schema
from telemetry_server.http.router import Route
from telemetry_server.models.metric import MAX_NAME_LENGTH, MAX_TAG_LENGTH, MAX_TAGS
from telemetry_server.models.value_range import VALUE_PARAMS

_PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
_ERRORS = {
    400: "The request is malformed (e.g. the body is not JSON).",
    401: "No valid API key: missing, malformed, unknown or revoked (same answer for each).",
    403: "The API key's role is too small for this endpoint.",
    404: "No such resource.",
    408: "The body did not arrive within HTTP_BODY_TIMEOUT_MS.",
    413: "The body is larger than MAX_BODY_BYTES.",
    415: "The body is not in a media type or Content-Encoding this endpoint reads (application/json and gzip, "
    "unless its summary says otherwise).",
    422: "The input is invalid; `errors` lists fields and reasons (the first 100; `errors_omitted` counts the rest).",
    426: "A WebSocket endpoint asked for over plain HTTP: open it as a WebSocket.",
    429: "Rate limited; retry after `Retry-After` seconds.",
    503: "A database is unreachable, or too busy to answer in time; retry after `Retry-After` seconds.",
}
# The problem+json answers an operation may give, by kind of route (401 and 403 are left out of open ones).
BASE_ERRORS = (401, 403, 429, 503)
READ_ERRORS = (401, 403, 422, 429, 503)  # with query parameters
BY_ID_ERRORS = (401, 403, 404, 429, 503)
BODY_ERRORS = (400, 401, 403, 408, 413, 415, 422, 429, 503)


def json_content(schema: Schema) -> Schema:
    return {"application/json": {"schema": schema}}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def text_param(name: str, description: str) -> Schema:
    return {"name": name, "in": "query", "description": description, "schema": {"type": "string"}}


ID_PARAM: Schema = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
NAME_PARAM: Schema = {"name": "name", "in": "query", "schema": ref("MetricName")}
TAG_PARAM: Schema = {
    "name": "tag",
    "in": "query",
    "description": "Repeatable: every tag given must be on the metric.",
    "schema": {"type": "array", "items": ref("Tag"), "maxItems": MAX_TAGS},
    "style": "form",
    "explode": True,
}
FROM_PARAM = text_param("from", "Inclusive; RFC 3339 or epoch.")
TO_PARAM = text_param("to", "Exclusive; RFC 3339 or epoch.")
VALUE_RANGE_PARAMS = tuple({"name": p, "in": "query", "schema": {"type": "number"}} for p in VALUE_PARAMS)

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
            "errors_omitted": {"type": "integer", "description": "Problems found beyond those listed in `errors`."},
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
            "name": ref("MetricName"),
            "tags": {"type": "array", "items": ref("Tag"), "maxItems": MAX_TAGS, "uniqueItems": True},
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
            "id": {
                "description": "36 hex digits; 24 for a metric stored before the time-series layout.",
                "type": "string",
                "pattern": "^([0-9a-f]{36}|[0-9a-f]{24})$",
            },
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
            "items": {"type": "array", "items": ref("Metric")},
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
    "Readiness": {
        "type": "object",
        "required": ["status", "mongo", "redis"],
        "properties": {
            "status": {"enum": ["ready", "unavailable", "draining"]},
            "mongo": {"enum": ["up", "down"]},
            "redis": {"enum": ["up", "down"]},
            "down": {"type": "array", "items": {"enum": ["mongo", "redis"]}},
            "detail": {"type": "string", "description": "What being down or draining means, when either is so."},
        },
    },
}
_SCHEMAS["CreatedKey"] = {
    "allOf": [
        ref("ApiKey"),
        {
            "type": "object",
            "required": ["key"],
            "properties": {"key": {"type": "string", "description": "The key itself: shown this once."}},
        },
    ]
}


def build_spec(routes: Iterable[Route[Access]]) -> Schema:
    paths: Schema = {}
    for route in routes:
        for method in route.methods:
            paths.setdefault(route.path, {})[method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "telemetry-server",
            "version": "0.1.0",
            "description": "Collect, query and manage metrics. Errors are RFC 9457 problem details.",
        },
        "paths": paths,
        "components": {
            "schemas": _SCHEMAS,
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


def _operation(route: Route[Access]) -> Schema:
    """The route's name is its operationId, and the role it needs decides its security."""
    declared = route.operation
    operation: Schema = {"operationId": route.name, "summary": declared.summary}
    if declared.parameters:
        operation["parameters"] = list(declared.parameters)
    if declared.body is not None:
        body = {media_type: {"schema": declared.body} for media_type in declared.body_types}
        operation["requestBody"] = {"required": True, "content": body}
    responses: Schema = {}
    for status, (description, content) in declared.responses.items():
        responses[str(status)] = {"description": description, **({"content": content} if content else {})}
    for status in declared.errors:
        if route.role is None and status in (401, 403):
            continue
        content = declared.error_content or _PROBLEM
        responses.setdefault(str(status), {"description": _ERRORS[status], "content": content})
    operation["responses"] = responses
    if route.role is None:
        operation["security"] = []
    else:
        operation["x-required-role"] = route.role.value
        operation["security"] = [{"bearer": []}, {"token": []}]
    return operation
