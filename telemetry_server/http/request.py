"""The request as handlers see it: method, path, query, headers, and a body read once with a size limit."""

from __future__ import annotations

import asyncio
import zlib
from typing import Any
from urllib.parse import parse_qsl

import orjson

from telemetry_server.errors import (
    BadRequest,
    MalformedJSON,
    PayloadTooLarge,
    RequestTimeout,
    UnsupportedContentEncoding,
    UnsupportedMediaType,
    excerpt,
)
from telemetry_server.http.json_shape import check_json_shape, nested_too_deep
from telemetry_server.http.types import Receive, Scope

_GZIP = frozenset({b"gzip", b"x-gzip"})  # x-gzip: the old name, still to be read as gzip (RFC 9110, 8.4.1.3)
_IDENTITY = b"identity"


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
        method: str = self.scope.get("method", "GET")  # a WebSocket's scope has none: its handshake is a GET
        return method

    @property
    def websocket(self) -> bool:
        """Whether this is a WebSocket's opening handshake (method GET, no body)."""
        return bool(self.scope["type"] == "websocket")

    @property
    def path(self) -> str:
        path: str = self.scope["path"]
        return path

    @property
    def key_id(self) -> str | None:
        """The API key's id once authenticated; None while authentication is off."""
        key_id: str | None = self.scope.get("telemetry.key_id")
        return key_id

    @property
    def client_id(self) -> str:
        """Who is asking, for rate limits: the API key's id once authenticated, else the peer address."""
        key_id = self.key_id
        if key_id is not None:
            return key_id
        client = self.scope.get("client")
        return str(client[0]) if client else "unknown"

    @property
    def query(self) -> list[tuple[str, str]]:
        """Query parameters in order, repeated keys kept."""
        if self._query is None:
            text = self.query_string
            self._query = parse_qsl(text, keep_blank_values=True) if text else []
        return self._query

    @property
    def query_string(self) -> str:
        """Raw bytes past ASCII are read as UTF-8, as percent-escapes are (`tag=région` and `tag=r%C3%A9gion`
        are one tag): what curl sends for a URL typed with them."""
        raw: bytes = self.scope.get("query_string", b"")
        try:
            return raw.decode()
        except UnicodeDecodeError:
            raise BadRequest("the query string is not UTF-8: percent-encode its bytes as UTF-8") from None

    def header(self, name: bytes) -> bytes | None:
        """A header by lower-case name; the last one wins when repeated."""
        if self._headers is None:
            self._headers = dict(self.scope["headers"])
        return self._headers.get(name)

    @property
    def media_type(self) -> bytes:
        """The Content-Type without its parameters, lower case (b"" when none was sent)."""
        return (self.header(b"content-type") or b"").split(b";", 1)[0].strip().lower()

    def header_values(self, name: bytes) -> list[bytes]:
        """Every value of a header by lower-case name, in the order sent; empty when it was not sent."""
        return [value for key, value in self.scope["headers"] if key == name]

    async def body(self) -> bytes:
        """The whole body, refused with 413 as soon as it is known to pass the limit, decoded first when it was
        sent gzipped (and refused with 413 past the limit once decoded); 415 for another Content-Encoding."""
        if self._body is not None:
            return self._body
        gzipped = self._gzipped()
        raw = await self.raw_body()
        self._body = gunzip(raw, self.max_body_bytes) if gzipped else raw
        return self._body

    async def raw_body(self) -> bytes:
        """The body as sent, whatever its Content-Encoding, refused with 413 past the limit: for the protocols
        that compress in a way of their own (remote_write's snappy) and decode it themselves; called instead of
        `body`, once."""
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
        return b"".join(chunks)

    def _gzipped(self) -> bool:
        """Whether the body is gzipped; 415 for any other coding (every Content-Encoding header counts)."""
        declared = b", ".join(self.header_values(b"content-encoding"))
        codings = [coding for part in declared.split(b",") if (coding := part.strip().lower()) not in (b"", _IDENTITY)]
        if not codings:
            return False
        if len(codings) == 1 and codings[0] in _GZIP:
            return True
        shown = excerpt(declared.decode("latin-1"))
        raise UnsupportedContentEncoding(
            f"Content-Encoding {shown!r} is not decoded here: send the body as is, or gzip it"
        )

    async def json(self) -> Any:
        """The body parsed as JSON; 415 unless the content type is JSON, 400 when it does not parse, 422 when it
        nests too deep or has keys that start with `$` or contain `.`."""
        content_type = self.media_type
        if content_type != b"application/json" and not content_type.endswith(b"+json"):
            raise UnsupportedMediaType("send the body as application/json")
        body = await self.body()
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            if _nested_past_the_parser(exc):  # deeper than MAX_JSON_DEPTH can be: the same 422
                raise nested_too_deep(self.max_json_depth) from None
            raise MalformedJSON(f"the body is not valid JSON: {exc}") from None
        check_json_shape(document, self.max_json_depth)
        return document


def _nested_past_the_parser(exc: orjson.JSONDecodeError) -> bool:
    """orjson stops at 1,024 levels with "depth limit exceeded" (3.13); test_request_body fails if a release
    words it otherwise."""
    return "depth limit" in str(exc)


def gunzip(data: bytes, limit: int) -> bytes:
    """gzip members decoded into at most `limit` bytes, else 413. The inflater is never asked for more than one
    byte past the limit, so a small body that would inflate to gigabytes (a zip bomb) costs no more than a
    plain body of the largest size allowed."""
    out = bytearray()
    while data:
        inflater = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)  # gzip's header and trailer, not raw deflate
        try:
            out += inflater.decompress(data, limit + 1 - len(out))
        except zlib.error as exc:
            raise BadRequest(f"the body is not valid gzip ({exc})") from None
        if len(out) > limit:
            raise PayloadTooLarge(f"body exceeds the limit of {limit} bytes once decompressed")
        if not inflater.eof:
            raise BadRequest("the gzip body ends before its last member does")
        data = inflater.unused_data  # a further member (gzip files may be concatenated)
    return bytes(out)
