"""`GET /openapi.json`: the API description, serialized once per worker."""

from __future__ import annotations

import orjson

from telemetry_server.http.request import Request
from telemetry_server.http.responses import Response, raw_json_response
from telemetry_server.http.router import Route
from telemetry_server.openapi import build_spec


class OpenApiResource:
    def __init__(self) -> None:
        self._body = orjson.dumps(build_spec())

    async def spec(self, request: Request) -> Response:
        return raw_json_response(self._body)

    def routes(self) -> list[Route]:
        return [Route("/openapi.json", ("GET",), self.spec, "openapi")]
