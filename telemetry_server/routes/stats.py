"""Self-metrics: `GET /stats` (JSON) and `GET /internal/metrics` (Prometheus text), across all workers."""

from __future__ import annotations

from telemetry_server.auth.keys import Role
from telemetry_server.auth.policy import Access
from telemetry_server.http.operation import Operation
from telemetry_server.http.request import Request
from telemetry_server.http.responses import Response, json_response
from telemetry_server.http.router import Route
from telemetry_server.openapi import BASE_ERRORS, json_content
from telemetry_server.services.stats_service import StatsService

_PROMETHEUS = b"text/plain; version=0.0.4; charset=utf-8"
_STATS = Operation(
    "Server statistics across all workers.",
    {200: ("Statistics.", json_content({"type": "object"}))},
    BASE_ERRORS,
)
_SCRAPE = Operation(
    "Server statistics in the Prometheus text format.",
    {200: ("Prometheus exposition.", {"text/plain": {"schema": {"type": "string"}}})},
    BASE_ERRORS,
)


class StatsResource:
    def __init__(self, service: StatsService) -> None:
        self._service = service

    async def stats(self, request: Request) -> Response:
        return json_response(await self._service.overview())

    async def prometheus(self, request: Request) -> Response:
        return Response(200, await self._service.prometheus(), _PROMETHEUS)

    def routes(self) -> list[Route[Access]]:
        return [
            Route("/stats", ("GET",), self.stats, "stats", role=Role.READ, operation=_STATS),
            # Prometheus sends its key with `authorization: {credentials: ...}`; a scrape is never rate limited.
            Route(
                "/internal/metrics",
                ("GET",),
                self.prometheus,
                "internal_metrics",
                role=Role.READ,
                rate_limited=False,
                operation=_SCRAPE,
            ),
        ]
