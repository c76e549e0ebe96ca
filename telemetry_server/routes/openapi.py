"""`GET /openapi.json`: the API description, serialized once per worker."""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from telemetry_server.auth.policy import OPEN, Access
from telemetry_server.http.operation import Operation
from telemetry_server.http.request import Request
from telemetry_server.http.responses import Response, raw_json_response
from telemetry_server.http.router import Route
from telemetry_server.openapi import build_spec, json_content

_SPEC = Operation("This document.", {200: ("OpenAPI 3.1.", json_content({"type": "object"}))})


class OpenApiResource:
    """Describes the routes it is given, and itself."""

    def __init__(self, routes: Iterable[Route[Access]]) -> None:
        self._body = orjson.dumps(build_spec([*routes, *self.routes()]))

    async def spec(self, request: Request) -> Response:
        return raw_json_response(self._body)

    def routes(self) -> list[Route[Access]]:
        return [Route("/openapi.json", ("GET",), self.spec, "openapi", role=OPEN, operation=_SPEC)]
