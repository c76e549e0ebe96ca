"""The request as handlers see it: method, path, query, headers, and a body read once with a size limit."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qsl

import orjson

from telemetry_server.errors import MalformedJSON, PayloadTooLarge, RequestTimeout, UnsupportedMediaType
from telemetry_server.http.json_shape import check_json_shape
from telemetry_server.http.types import Receive, Scope


class Request:
    __slots__ = (
        "_body",
        "_headers",
        "_query",
        "_receive",
        "body_timeout_seconds",
        "max_body_bytes",
        "max_json_depth",
        "params",
        "scope",
    )

    def __init__(
        self,
        scope: Scope,
        receive: Receive,
        max_body_bytes: int,
        max_json_depth: int = 32,
        body_timeout_seconds: float = 30.0,
    ) -> None:
        self.scope = scope
        self.body_timeout_seconds = body_timeout_seconds
        self._receive = receive
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth
        self.params: dict[str, str] = {}
        self._query: list[tuple[str, str]] | None = None
        self._headers: dict[bytes, bytes] | None = None
        self._body: bytes | None = None

    @property
    def method(self) -> str:
        method: str = self.scope["method"]
        return method

    @property
    def path(self) -> str:
        path: str = self.scope["path"]
        return path

    @property
    def client_id(self) -> str:
        """Who is asking, for rate limits: the API key's id once authenticated, else the peer address."""
        key_id: str | None = self.scope.get("telemetry.key_id")
        if key_id is not None:
            return key_id
        client = self.scope.get("client")
        return str(client[0]) if client else "unknown"

    @property
    def query(self) -> list[tuple[str, str]]:
        """Query parameters in order, repeated keys kept."""
        if self._query is None:
            raw: bytes = self.scope.get("query_string", b"")
            self._query = parse_qsl(raw.decode("latin-1"), keep_blank_values=True) if raw else []
        return self._query

    @property
    def query_string(self) -> str:
        raw: bytes = self.scope.get("query_string", b"")
        return raw.decode("latin-1")

    def header(self, name: bytes) -> bytes | None:
        """A header by lower-case name; the last one wins when repeated."""
        if self._headers is None:
            self._headers = dict(self.scope["headers"])
        return self._headers.get(name)

    async def body(self) -> bytes:
        """The whole body, refused with 413 as soon as it is known to pass the limit."""
        if self._body is not None:
            return self._body
        declared = self.header(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise PayloadTooLarge(f"body of {int(declared)} bytes exceeds the limit of {self.max_body_bytes}")
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.body_timeout_seconds):  # a client that trickles its body
                while True:
                    message = await self._receive()
                    if message["type"] == "http.disconnect":
                        break
                    chunk: bytes = message.get("body", b"")
                    size += len(chunk)
                    if size > self.max_body_bytes:
                        raise PayloadTooLarge(f"body exceeds the limit of {self.max_body_bytes} bytes")
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            raise RequestTimeout(f"the body did not arrive within {self.body_timeout_seconds:g} s") from None
        self._body = b"".join(chunks)
        return self._body

    async def json(self) -> Any:
        """The body parsed as JSON; 415 unless the content type is JSON, 400 when it does not parse, 422 when it
        nests too deep or has keys that start with `$` or contain `.`."""
        content_type = (self.header(b"content-type") or b"").split(b";", 1)[0].strip().lower()
        if content_type != b"application/json" and not content_type.endswith(b"+json"):
            raise UnsupportedMediaType("send the body as application/json")
        body = await self.body()
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise MalformedJSON(f"the body is not valid JSON: {exc}") from None
        check_json_shape(document, self.max_json_depth)
        return document
