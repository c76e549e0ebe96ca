"""Handlers for `/admin/keys`: API key management for admins."""

from __future__ import annotations

from telemetry_server.auth.keys import parse_key_request
from telemetry_server.http.request import Request
from telemetry_server.http.responses import Response, json_response
from telemetry_server.http.router import Route
from telemetry_server.services.key_service import ApiKeyService

_NO_STORE = [(b"cache-control", b"no-store")]


class KeyResource:
    def __init__(self, service: ApiKeyService) -> None:
        self._service = service

    async def create(self, request: Request) -> Response:
        """201 with the key's text: shown this once, never stored, never shown again."""
        role, name = parse_key_request(await request.json())
        key, text = await self._service.create(role, name)
        location = (b"location", f"/admin/keys/{key.key_id}".encode())
        return json_response({**key.to_json(), "key": text}, 201, [location, *_NO_STORE])

    async def list_keys(self, request: Request) -> Response:
        return json_response({"items": [key.to_json() for key in await self._service.list_keys()]})

    async def revoke(self, request: Request) -> Response:
        return json_response((await self._service.revoke(request.params["id"])).to_json())

    def routes(self) -> list[Route]:
        return [
            Route("/admin/keys", ("POST",), self.create, "create_key"),
            Route("/admin/keys", ("GET",), self.list_keys, "list_keys"),
            Route("/admin/keys/{id}", ("DELETE",), self.revoke, "revoke_key"),
        ]
