"""Handlers for `/metrics` and `/metrics/{id}`."""

from __future__ import annotations

from telemetry_server.auth.keys import Role
from telemetry_server.auth.policy import Access
from telemetry_server.config import Settings
from telemetry_server.errors import FieldError, ValidationFailed
from telemetry_server.http.operation import Operation
from telemetry_server.http.request import Request
from telemetry_server.http.responses import Response, empty_response, json_response, raw_json_response
from telemetry_server.http.router import Route
from telemetry_server.models.metric import parse_metric, parse_metric_batch
from telemetry_server.openapi import (
    BODY_ERRORS,
    BY_ID_ERRORS,
    FROM_PARAM,
    ID_PARAM,
    NAME_PARAM,
    READ_ERRORS,
    TAG_PARAM,
    TO_PARAM,
    VALUE_RANGE_PARAMS,
    json_content,
    ref,
    text_param,
)
from telemetry_server.services.metric_service import MetricService, prepare_listing
from telemetry_server.services.rate_limit import RateLimiter

_CACHE_HIT = [(b"x-cache", b"hit")]
_CACHE_MISS = [(b"x-cache", b"miss")]

_LIST = Operation(
    "List metrics, newest first, a page at a time.",
    {200: ("A page of metrics.", json_content(ref("MetricPage")))},
    READ_ERRORS,
    parameters=[
        NAME_PARAM,
        TAG_PARAM,
        FROM_PARAM,
        TO_PARAM,
        {
            "name": "limit",
            "in": "query",
            "description": "Page size, up to MAX_PAGE_SIZE (default DEFAULT_PAGE_SIZE).",
            "schema": {"type": "integer", "minimum": 1},
        },
        {"name": "sort", "in": "query", "schema": {"type": "string", "enum": ["desc", "asc"]}},
        text_param("cursor", "The `next` of the previous page."),
        text_param("filters", 'A JSON object: {"name": ..., "tags": [...], "from": ..., "to": ...}.'),
        *VALUE_RANGE_PARAMS,
    ],
)
_CREATE = Operation(
    "Store one metric, or a batch (up to MAX_BATCH_SIZE) all or nothing.",
    {201: ("Stored.", json_content({"oneOf": [ref("Metric"), ref("BatchCreated")]}))},
    BODY_ERRORS,
    body={"oneOf": [ref("MetricInput"), {"type": "array", "items": ref("MetricInput"), "minItems": 1}]},
)
_GET = Operation(
    "Read one metric.", {200: ("The metric.", json_content(ref("Metric")))}, BY_ID_ERRORS, parameters=[ID_PARAM]
)
_REPLACE = Operation(
    "Replace one metric (the body may repeat the id).",
    {200: ("The metric as stored.", json_content(ref("Metric")))},
    (*BODY_ERRORS, 404),
    parameters=[ID_PARAM],
    body=ref("MetricInput"),
)
_DELETE = Operation("Delete one metric.", {204: ("Deleted.", None)}, BY_ID_ERRORS, parameters=[ID_PARAM])


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

    def routes(self) -> list[Route[Access]]:
        return [
            Route("/metrics", ("GET",), self.search, "list_metrics", role=Role.READ, operation=_LIST),
            Route("/metrics", ("POST",), self.create, "create_metrics", role=Role.WRITE, operation=_CREATE),
            Route("/metrics/{id}", ("GET",), self.get, "get_metric", role=Role.READ, operation=_GET),
            Route("/metrics/{id}", ("PUT",), self.replace, "replace_metric", role=Role.WRITE, operation=_REPLACE),
            Route("/metrics/{id}", ("DELETE",), self.delete, "delete_metric", role=Role.WRITE, operation=_DELETE),
        ]
