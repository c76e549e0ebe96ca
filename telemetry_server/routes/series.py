"""`GET /series/names` and `GET /series/tags`: the metric names and tags held, for autocompletion."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from telemetry_server.auth.keys import Role
from telemetry_server.auth.policy import Access
from telemetry_server.errors import FieldError, ValidationFailed
from telemetry_server.http.operation import Operation
from telemetry_server.http.request import Request
from telemetry_server.http.responses import Response, json_response
from telemetry_server.http.router import Route
from telemetry_server.models.metric import MAX_NAME_LENGTH, MAX_TAG_LENGTH, check_name
from telemetry_server.models.metric_query import collect_params
from telemetry_server.openapi import READ_ERRORS, json_content, ref, text_param
from telemetry_server.ports import SeriesCatalog

DEFAULT_LIMIT = 20
MAX_LIMIT = 1000
_NAMES_PARAMS = frozenset({"prefix", "limit"})
_TAGS_PARAMS = frozenset({"name", "prefix", "limit"})
_MAX_PREFIX = max(MAX_NAME_LENGTH, MAX_TAG_LENGTH)  # no longer than what it completes

_LIMIT_PARAM = {
    "name": "limit",
    "in": "query",
    "description": f"At most this many (default {DEFAULT_LIMIT}).",
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
}
_LIST = json_content({"type": "array", "items": {"type": "string"}})
_NAMES = Operation(
    "Metric names held that start with `prefix`, sorted.",
    {200: ("Names, each once.", _LIST)},
    READ_ERRORS,
    parameters=[text_param("prefix", "The start of the names (default: every name)."), _LIMIT_PARAM],
)
_TAGS = Operation(
    "Tags on the series of one metric name that start with `prefix` (e.g. `host:`), sorted.",
    {200: ("Tags, each once.", _LIST)},
    READ_ERRORS,
    parameters=[
        {"name": "name", "in": "query", "required": True, "schema": ref("MetricName")},
        text_param("prefix", "The start of the tags (default: every tag)."),
        _LIMIT_PARAM,
    ],
)


class SeriesLookup(NamedTuple):
    name: str
    prefix: str
    limit: int


class SeriesResource:
    def __init__(self, catalog: SeriesCatalog) -> None:
        self._catalog = catalog

    async def names(self, request: Request) -> Response:
        lookup = parse_series_lookup(request.query, need_name=False)
        return json_response(await self._catalog.names(lookup.prefix, lookup.limit))

    async def tags(self, request: Request) -> Response:
        lookup = parse_series_lookup(request.query, need_name=True)
        return json_response(await self._catalog.tags(lookup.name, lookup.prefix, lookup.limit))

    def routes(self) -> list[Route[Access]]:
        return [
            Route("/series/names", ("GET",), self.names, "series_names", role=Role.READ, operation=_NAMES),
            Route("/series/tags", ("GET",), self.tags, "series_tags", role=Role.READ, operation=_TAGS),
        ]


def parse_series_lookup(params: Sequence[tuple[str, str]], *, need_name: bool) -> SeriesLookup:
    """`prefix` (default empty), `limit` (1 to MAX_LIMIT) and, when `need_name`, a metric `name`."""
    errors: list[FieldError] = []

    def fail(field_name: str, message: str) -> None:
        errors.append(FieldError(field_name, message))

    found, _ = collect_params(params, _TAGS_PARAMS if need_name else _NAMES_PARAMS, fail)
    name = check_name(found.get("name"), fail) if need_name else ""
    prefix = found.get("prefix", "")
    if len(prefix) > _MAX_PREFIX:
        fail("prefix", f"must be at most {_MAX_PREFIX} characters")
    raw_limit = found.get("limit", str(DEFAULT_LIMIT))
    # "²".isdigit() is True but int() refuses it; the length bound keeps int() cheap.
    limit = int(raw_limit) if raw_limit.isascii() and raw_limit.isdigit() and len(raw_limit) <= 6 else 0
    if not 1 <= limit <= MAX_LIMIT:
        fail("limit", f"must be a whole number from 1 to {MAX_LIMIT}")
    if errors:
        raise ValidationFailed(errors)
    return SeriesLookup(name, prefix, limit)
