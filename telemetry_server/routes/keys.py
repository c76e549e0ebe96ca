"""Handlers for `/admin/keys`: API key management for admins."""

from __future__ import annotations

from telemetry_server.auth.keys import Role, parse_key_request
from telemetry_server.auth.policy import Access
from telemetry_server.http.operation import Operation
from telemetry_server.http.request import Request
from telemetry_server.http.responses import Response, json_response
from telemetry_server.http.router import Route
from telemetry_server.openapi import BASE_ERRORS, BODY_ERRORS, BY_ID_ERRORS, ID_PARAM, json_content, ref
from telemetry_server.services.key_service import ApiKeyService

_NO_STORE = [(b"cache-control", b"no-store")]
_CREATE = Operation(
    "Create an API key; the key is in this answer only.",
    {201: ("Created.", json_content(ref("CreatedKey")))},
    BODY_ERRORS,
    body=ref("KeyRequest"),
)
_LIST = Operation(
    "List API keys (never their secrets).",
    {
        200: (
            "Every key, revoked ones too.",
            json_content({"type": "object", "properties": {"items": {"type": "array", "items": ref("ApiKey")}}}),
        )
    },
    BASE_ERRORS,
)
_REVOKE = Operation(
    "Revoke an API key; every worker refuses it within a second.",
    {200: ("The revoked key.", json_content(ref("ApiKey")))},
    BY_ID_ERRORS,
    parameters=[ID_PARAM],
)


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

    def routes(self) -> list[Route[Access]]:
        return [
            Route("/admin/keys", ("POST",), self.create, "create_key", role=Role.ADMIN, operation=_CREATE),
            Route("/admin/keys", ("GET",), self.list_keys, "list_keys", role=Role.ADMIN, operation=_LIST),
            Route("/admin/keys/{id}", ("DELETE",), self.revoke, "revoke_key", role=Role.ADMIN, operation=_REVOKE),
        ]
