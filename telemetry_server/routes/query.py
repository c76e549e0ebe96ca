"""Handlers for `GET /metrics/aggregate` (structured) and `GET /query?prompt=` (natural language)."""

from __future__ import annotations

from collections.abc import Sequence

from telemetry_server.auth.keys import Role
from telemetry_server.auth.policy import Access
from telemetry_server.errors import FieldError, ValidationFailed
from telemetry_server.http.operation import Operation
from telemetry_server.http.request import Request
from telemetry_server.http.responses import Response, json_response
from telemetry_server.http.router import Route
from telemetry_server.models.aggregation import AGGREGATE_PATH, AggregateFn, parse_aggregate_query
from telemetry_server.models.metric_query import collect_params
from telemetry_server.models.time_range import load_zone
from telemetry_server.openapi import (
    FROM_PARAM,
    NAME_PARAM,
    READ_ERRORS,
    TAG_PARAM,
    TO_PARAM,
    VALUE_RANGE_PARAMS,
    json_content,
    text_param,
)
from telemetry_server.prompt.words import MAX_PROMPT_LENGTH
from telemetry_server.routes.influx import answer_influxql_get, is_influxql
from telemetry_server.services.query_service import QueryService

_PROMPT_PARAMS = frozenset({"prompt", "tz"})
_AGGREGATE = Operation(
    "Aggregate metrics (count, sum, avg, min, max, percentiles), optionally by bucket or group.",
    {200: ("The aggregate.", json_content({"type": "object"}))},
    READ_ERRORS,
    parameters=[
        {"name": "fn", "in": "query", "schema": {"type": "string", "enum": [fn.value for fn in AggregateFn]}},
        NAME_PARAM,
        text_param("name_prefix", "Every metric whose name starts with this."),
        TAG_PARAM,
        FROM_PARAM,
        TO_PARAM,
        text_param("range", "A window ending now, e.g. 1h, 7d."),
        text_param("bucket", "Group into time buckets of this width, e.g. 5m."),
        text_param("group_by", "`name` or a tag key."),
        {"name": "top", "in": "query", "schema": {"type": "integer", "minimum": 1}},
        text_param("order", "asc or desc."),
        text_param("tz", "An IANA time zone for calendar buckets (default UTC)."),
        *VALUE_RANGE_PARAMS,
    ],
)
_ASK = Operation(
    "Ask in words, e.g. `average cpu.load over the last hour by host`.",
    {200: ("The answer, with the structured query it was read as.", json_content({"type": "object"}))},
    READ_ERRORS,
    parameters=[
        {
            "name": "prompt",
            "in": "query",
            "required": True,
            "description": f"At most {MAX_PROMPT_LENGTH} characters.",
            "schema": {"type": "string"},
        },
        text_param("tz", "An IANA time zone (default UTC)."),
    ],
)


class QueryResource:
    def __init__(self, service: QueryService) -> None:
        self._service = service

    async def aggregate(self, request: Request) -> Response:
        query = parse_aggregate_query(request.query, self._service.clock())
        return json_response(await self._service.aggregate(query))

    async def ask(self, request: Request) -> Response:
        if is_influxql(request):  # InfluxDB clients list databases with GET /query?q=SHOW DATABASES
            return answer_influxql_get(request)
        prompt, tz = parse_prompt_params(request.query)
        return json_response(await self._service.ask(prompt, tz))

    def routes(self) -> list[Route[Access]]:
        # A static path: the router finds it before the pattern /metrics/{id}.
        return [
            Route(AGGREGATE_PATH, ("GET",), self.aggregate, "aggregate_metrics", role=Role.READ, operation=_AGGREGATE),
            Route("/query", ("GET",), self.ask, "query_prompt", role=Role.READ, operation=_ASK),
        ]


def parse_prompt_params(params: Sequence[tuple[str, str]]) -> tuple[str, str]:
    """`prompt` (required, once) and `tz` (an IANA zone, UTC by default)."""
    errors: list[FieldError] = []

    def fail(field_name: str, message: str) -> None:
        errors.append(FieldError(field_name, message))

    found, _ = collect_params(params, _PROMPT_PARAMS, fail)
    if "prompt" not in found:
        fail("prompt", "is required, e.g. ?prompt=average cpu.load over the last hour")
    tz = found.get("tz", "UTC")
    try:
        tz = load_zone(tz).key
    except ValueError as exc:
        fail("tz", str(exc))
    if errors:
        raise ValidationFailed(errors)
    return found["prompt"], tz
