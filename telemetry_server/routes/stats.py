"""Self-metrics: `GET /stats` (JSON) and `GET /internal/metrics` (Prometheus text), across all workers."""

from __future__ import annotations

from telemetry_server.http.request import Request
from telemetry_server.http.responses import Response, json_response
from telemetry_server.http.router import Route
from telemetry_server.services.stats_service import StatsService

_PROMETHEUS = b"text/plain; version=0.0.4; charset=utf-8"


class StatsResource:
    def __init__(self, service: StatsService) -> None:
        self._service = service

    async def stats(self, request: Request) -> Response:
        return json_response(await self._service.overview())

    async def prometheus(self, request: Request) -> Response:
        return Response(200, await self._service.prometheus(), _PROMETHEUS)

    def routes(self) -> list[Route]:
        return [
            Route("/stats", ("GET",), self.stats, "stats"),
            Route("/internal/metrics", ("GET",), self.prometheus, "internal_metrics"),
        ]
