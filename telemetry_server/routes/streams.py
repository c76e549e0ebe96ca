"""Handlers for the live streams: `/metrics/stream` (SSE), `/metrics/ws` (WebSocket) and their browser tokens."""

from __future__ import annotations

from telemetry_server.auth.keys import Role
from telemetry_server.auth.policy import Access
from telemetry_server.config import Settings
from telemetry_server.errors import UpgradeRequired
from telemetry_server.http.event_stream import EventStream
from telemetry_server.http.operation import Operation
from telemetry_server.http.request import Request
from telemetry_server.http.responses import Response, json_response
from telemetry_server.http.router import Route
from telemetry_server.models.live_stream import KEEP_ALIVE, TOKEN_PARAM, RollupFn, parse_stream_query
from telemetry_server.openapi import BASE_ERRORS, NAME_PARAM, READ_ERRORS, TAG_PARAM, VALUE_RANGE_PARAMS, text_param
from telemetry_server.services.live_streams import StreamHub, Subscription

_STREAM_PARAMS = [
    NAME_PARAM,
    text_param("name_prefix", "Metrics whose name starts with this (not with `name`)."),
    TAG_PARAM,
    *VALUE_RANGE_PARAMS,
    text_param("every", "A rollup interval (1s to 60m, e.g. 10s): one `rollup` event per interval and series."),
    {"name": "fn", "in": "query", "schema": {"type": "string", "enum": list(RollupFn)}},
    text_param(TOKEN_PARAM, "A token from POST /metrics/stream/token, for clients that cannot send a header."),
]
_SSE = Operation(
    "Follow acknowledged writes live as Server-Sent Events (docs/streams.md); Last-Event-ID resumes.",
    {200: ("An endless text/event-stream.", {"text/event-stream": {"schema": {"type": "string"}}})},
    READ_ERRORS,
    parameters=_STREAM_PARAMS,
)
_WS = Operation(
    'The same events over a WebSocket, one JSON text message each; `{"resume": id}` first resumes.',
    {101: ("Switching to the WebSocket protocol.", None)},
    (426, *READ_ERRORS),
    parameters=_STREAM_PARAMS,
)
_TOKEN = Operation(
    "A short-lived token that opens streams as this key (`?token=`), for browsers' EventSource.",
    {
        201: (
            "The token, usable until it expires (STREAM_TOKEN_SECONDS) and while the key is not revoked.",
            {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["token", "expires_in"],
                        "properties": {"token": {"type": "string"}, "expires_in": {"type": "integer"}},
                    }
                }
            },
        )
    },
    BASE_ERRORS,
)


class StreamResource:
    def __init__(self, hub: StreamHub, settings: Settings) -> None:
        self._hub = hub
        self._settings = settings

    async def server_sent_events(self, request: Request) -> EventStream:
        subscription = self._subscribe(request)
        try:
            await subscription.start(_last_event_id(request))
        except BaseException:
            subscription.close()
            raise
        return self._stream(subscription)

    async def websocket(self, request: Request) -> EventStream:
        if not request.websocket:
            raise UpgradeRequired("open /metrics/ws as a WebSocket, or read /metrics/stream (Server-Sent Events)")
        return self._stream(self._subscribe(request))  # started with the client's first message (resume)

    async def token(self, request: Request) -> Response:
        seconds = self._settings.stream_token_seconds
        token = await self._hub.issue_token(request.key_id or "", seconds)
        return json_response({"token": token, "expires_in": seconds}, 201)

    def _subscribe(self, request: Request) -> Subscription:
        return self._hub.subscribe(parse_stream_query(request.query), request.client_id)

    def _stream(self, subscription: Subscription) -> EventStream:
        settings = self._settings
        return EventStream(subscription, settings.stream_keepalive_seconds, settings.stream_retry_ms, KEEP_ALIVE)

    def routes(self) -> list[Route[Access]]:
        read = Role.READ
        return [
            Route(
                "/metrics/stream",
                ("GET",),
                self.server_sent_events,
                "stream_metrics",
                role=read,
                operation=_SSE,
                token_param=TOKEN_PARAM,
            ),
            Route(
                "/metrics/ws",
                ("GET",),
                self.websocket,
                "stream_metrics_websocket",
                role=read,
                operation=_WS,
                token_param=TOKEN_PARAM,
            ),
            Route("/metrics/stream/token", ("POST",), self.token, "create_stream_token", role=read, operation=_TOKEN),
        ]


def _last_event_id(request: Request) -> str | None:
    value = request.header(b"last-event-id")
    return value.decode("latin-1") if value else None
