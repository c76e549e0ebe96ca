"""Handlers for `/metrics` and `/metrics/{id}`."""

from __future__ import annotations

from telemetry_server.config import Settings
from telemetry_server.errors import FieldError, ValidationFailed
from telemetry_server.http.request import Request
from telemetry_server.http.responses import Response, empty_response, json_response, raw_json_response
from telemetry_server.http.router import Route
from telemetry_server.models.metric import parse_metric, parse_metric_batch
from telemetry_server.models.metric_query import prepare_listing
from telemetry_server.services.metric_service import MetricService
from telemetry_server.services.rate_limit import RateLimiter

_CACHE_HIT = [(b"x-cache", b"hit")]
_CACHE_MISS = [(b"x-cache", b"miss")]


class MetricResource:
    def __init__(self, service: MetricService, limiter: RateLimiter, settings: Settings) -> None:
        self._service = service
        self._limiter = limiter
        self._settings = settings

    async def create(self, request: Request) -> Response:
        """One object stores one metric; an array stores a batch, all or nothing."""
        data = await request.json()
        now = self._service.clock()
        if isinstance(data, list):
            batch = parse_metric_batch(data, now, self._settings.max_batch_size)
            if self._limiter.enabled:  # the request paid for one metric on the way in
                await self._limiter.admit(request.client_id, len(batch) - 1)
            stored = await self._service.record_batch(batch)
            return json_response({"count": len(stored), "ids": [m.id for m in stored]}, 201)
        if not isinstance(data, dict):
            raise ValidationFailed([FieldError("$", "must be a metric object or an array of them")])
        metric = await self._service.record_one(parse_metric(data, now))
        return json_response(metric.to_json(), 201, [(b"location", f"/metrics/{metric.id}".encode())])

    async def search(self, request: Request) -> Response:
        settings = self._settings
        listing = prepare_listing(request.query_string, settings.default_page_size, settings.max_page_size)
        body, hit = await self._service.list_json(listing)
        return raw_json_response(body, headers=_CACHE_HIT if hit else _CACHE_MISS)

    async def get(self, request: Request) -> Response:
        metric = await self._service.get(request.params["id"])
        return json_response(metric.to_json())

    async def replace(self, request: Request) -> Response:
        id_ = request.params["id"]
        metric = parse_metric(await request.json(), self._service.clock(), id_=id_)
        return json_response((await self._service.replace(id_, metric)).to_json())

    async def delete(self, request: Request) -> Response:
        await self._service.delete(request.params["id"])
        return empty_response(204)

    def routes(self) -> list[Route]:
        return [
            Route("/metrics", ("GET",), self.search, "list_metrics"),
            Route("/metrics", ("POST",), self.create, "create_metrics"),
            Route("/metrics/{id}", ("GET",), self.get, "get_metric"),
            Route("/metrics/{id}", ("PUT",), self.replace, "replace_metric"),
            Route("/metrics/{id}", ("DELETE",), self.delete, "delete_metric"),
        ]
