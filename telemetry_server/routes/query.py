"""Handlers for `GET /metrics/aggregate` (structured) and `GET /query?prompt=` (natural language)."""

from __future__ import annotations

from collections.abc import Sequence

from telemetry_server.errors import FieldError, ValidationFailed
from telemetry_server.http.request import Request
from telemetry_server.http.responses import Response, json_response
from telemetry_server.http.router import Route
from telemetry_server.models.aggregation import AGGREGATE_PATH, parse_aggregate_query
from telemetry_server.models.time_range import load_zone
from telemetry_server.services.query_service import QueryService


class QueryResource:
    def __init__(self, service: QueryService) -> None:
        self._service = service

    async def aggregate(self, request: Request) -> Response:
        query = parse_aggregate_query(request.query, self._service.clock())
        return json_response(await self._service.aggregate(query))

    async def ask(self, request: Request) -> Response:
        prompt, tz = parse_prompt_params(request.query)
        return json_response(await self._service.ask(prompt, tz))

    def routes(self) -> list[Route]:
        # A static path: the router finds it before the pattern /metrics/{id}.
        return [
            Route(AGGREGATE_PATH, ("GET",), self.aggregate, "aggregate_metrics"),
            Route("/query", ("GET",), self.ask, "query_prompt"),
        ]


def parse_prompt_params(params: Sequence[tuple[str, str]]) -> tuple[str, str]:
    """`prompt` (required, once) and `tz` (an IANA zone, UTC by default)."""
    errors: list[FieldError] = []
    found: dict[str, str] = {}
    for key, value in params:
        if key not in ("prompt", "tz"):
            errors.append(FieldError(key[:64], "is not a known parameter (allowed: prompt, tz)"))
        elif key in found:
            errors.append(FieldError(key, "may be given only once"))
        else:
            found[key] = value
    if "prompt" not in found:
        errors.append(FieldError("prompt", "is required, e.g. ?prompt=average cpu.load over the last hour"))
    tz = found.get("tz", "UTC")
    try:
        tz = load_zone(tz).key
    except ValueError as exc:
        errors.append(FieldError("tz", str(exc)))
    if errors:
        raise ValidationFailed(errors)
    return found["prompt"], tz
