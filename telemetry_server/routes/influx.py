"""InfluxDB's write API: `POST /write` (v1), `POST /api/v2/write`, `GET|HEAD /ping` and the `POST /query`
agents send first. Bodies are line protocol (ingest/line_protocol.py); docs/ingest.md has the mapping.

Refused lines and fields are answered in InfluxDB's own shapes (v1 `{"error": ...}`, v2 `{"code", "message"}`),
because agents decide by that text whether to drop or retry: Telegraf drops a batch whose error says
"partial write" or "unable to parse" and retries any other. Errors of our own (401, 413, 429, 503) stay
problem+json: agents read only the status of those.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

import orjson

from telemetry_server.auth.keys import Role
from telemetry_server.auth.policy import OPEN, Access
from telemetry_server.config import Settings
from telemetry_server.http.operation import Operation
from telemetry_server.http.request import Request
from telemetry_server.http.responses import JSON, Response
from telemetry_server.http.router import Route
from telemetry_server.ingest.influxql import StatementRefused, answer_statements
from telemetry_server.ingest.line_protocol import DecodedLines, Precision, decode_lines, parse_precision
from telemetry_server.openapi import BODY_ERRORS, json_content, text_param
from telemetry_server.services.ingest_service import IngestService

# What InfluxDB 1.8 says of itself; clients print it, none needs more.
VERSION = b"1.8.10"
_VERSION_HEADERS = ((b"x-influxdb-version", VERSION), (b"x-influxdb-build", b"telemetry-server"))
_NO_CONTENT = Response(204, b"", None, _VERSION_HEADERS)
_V1_PARAMS = frozenset({"db", "rp", "precision", "consistency", "u", "p"})
_V2_PARAMS = frozenset({"org", "orgID", "bucket", "precision"})
_QUERY_PARAMS = frozenset({"q", "db", "rp", "epoch", "chunked", "chunk_size", "pretty", "u", "p", "params"})
_FORM = b"application/x-www-form-urlencoded"

_LINE_BODY = {"text/plain": {"schema": {"type": "string", "description": "InfluxDB line protocol"}}}
_INFLUX_ERROR = json_content({"type": "object", "properties": {"error": {"type": "string"}}})
_WRITE_V1 = Operation(
    "Write InfluxDB line protocol (v1): one metric per numeric field, named measurement.field.",
    {
        204: ("Every point stored.", None),
        400: (
            'Some lines or fields refused, the rest stored: {"error": "partial write: ... dropped=N"}.',
            _INFLUX_ERROR,
        ),
    },
    BODY_ERRORS,
    parameters=[
        text_param("db", "Accepted and ignored: there is one metric store."),
        text_param("rp", "Accepted and ignored."),
        text_param("precision", "n (default), u, ms, s, m or h."),
        text_param("u", "Ignored (the key is `p`)."),
        text_param("p", "An API key, for clients that cannot send an Authorization header."),
    ],
)
_WRITE_V2 = Operation(
    "Write InfluxDB line protocol (v2 API); `Authorization: Token <key>`.",
    {
        204: ("Every point stored.", None),
        400: ("Some lines or fields refused, the rest stored.", json_content({"type": "object"})),
    },
    BODY_ERRORS,
    parameters=[
        text_param("org", "Accepted and ignored."),
        text_param("bucket", "Accepted and ignored."),
        text_param("precision", "ns (default), us, ms or s."),
    ],
)
_PING = Operation("InfluxDB's ping: 204 with X-Influxdb-Version.", {204: ("Up.", None)})
_QUERY = Operation(
    "The InfluxQL setup statements agents send before writing (CREATE DATABASE ...), answered as no-ops.",
    {200: ("InfluxDB's results.", json_content({"type": "object"})), 400: ("Another statement.", _INFLUX_ERROR)},
    BODY_ERRORS,
    parameters=[text_param("q", "InfluxQL statements, `;`-separated (also in a form body).")],
)


class InfluxResource:
    def __init__(self, ingest: IngestService, settings: Settings) -> None:
        self._ingest = ingest
        self._settings = settings

    async def write_v1(self, request: Request) -> Response:
        params = _params(request, _V1_PARAMS)
        decoded = await self._decode(request, parse_precision(params.get("precision", ""), v2=False))
        await self._ingest.store(request.client_id, decoded.points)
        if decoded.dropped:
            return _v1_error(f"partial write: {decoded.first_refusal} dropped={decoded.dropped}")
        return _NO_CONTENT

    async def write_v2(self, request: Request) -> Response:
        params = _params(request, _V2_PARAMS)
        decoded = await self._decode(request, parse_precision(params.get("precision", ""), v2=True))
        await self._ingest.store(request.client_id, decoded.points)
        if decoded.dropped:
            message = f"partial write: {decoded.first_refusal} dropped={decoded.dropped}"
            return _influx_response(400, {"code": "invalid", "message": message}, message)
        return _NO_CONTENT

    async def ping(self, request: Request) -> Response:
        return _NO_CONTENT

    async def query(self, request: Request) -> Response:
        params = _params(request, _QUERY_PARAMS)
        text = params.get("q")
        content_type = (request.header(b"content-type") or b"").split(b";", 1)[0].strip().lower()
        if text is None and content_type == _FORM:
            form = dict(parse_qsl((await request.body()).decode(errors="replace"), keep_blank_values=True))
            text = form.get("q")
        try:
            return _influx_response(200, answer_statements(text or ""))
        except StatementRefused as exc:
            return _v1_error(str(exc))

    async def _decode(self, request: Request, precision: Precision) -> DecodedLines:
        settings = self._settings
        request.max_body_bytes = settings.ingest_max_body_bytes  # agents' batches; bounded apart
        body = await request.body()
        return decode_lines(body, precision, self._ingest.clock(), settings.ingest_max_points)

    def routes(self) -> list[Route[Access]]:
        # /ping (and HEAD, as for every GET) is a probe, open and never rate-limited as InfluxDB's: clients call it
        # first, before any key is used.
        return [
            Route(
                "/write",
                ("POST",),
                self.write_v1,
                "influx_write_v1",
                role=Role.WRITE,
                operation=_WRITE_V1,
                key_param="p",
            ),
            Route("/api/v2/write", ("POST",), self.write_v2, "influx_write_v2", role=Role.WRITE, operation=_WRITE_V2),
            Route("/ping", ("GET",), self.ping, "influx_ping", role=OPEN, rate_limited=False, operation=_PING),
            Route("/query", ("POST",), self.query, "influx_query", role=Role.WRITE, operation=_QUERY, key_param="p"),
        ]


def is_influxql(request: Request) -> bool:
    """Whether a `GET /query` is InfluxDB's (`q=`, as TSBS's loader and InfluxDB 1.x tools send it) rather than
    a prompt (`prompt=`): the path is shared, the parameter tells them apart."""
    names = {key for key, _ in request.query}
    return "q" in names and "prompt" not in names


def answer_influxql_get(request: Request) -> Response:
    """`GET /query?q=SHOW DATABASES`, answered as InfluxDB does; setup statements need POST there too."""
    try:
        return _influx_response(200, answer_statements(_params(request, _QUERY_PARAMS).get("q", ""), read_only=True))
    except StatementRefused as exc:
        return _v1_error(str(exc))


def _params(request: Request, known: frozenset[str]) -> dict[str, str]:
    """The known parameters, the first of each as InfluxDB reads them; others are ignored, as InfluxDB ignores
    them (clients add their own)."""
    found: dict[str, str] = {}
    for key, value in request.query:
        if key in known:
            found.setdefault(key, value)
    return found


def _v1_error(message: str) -> Response:
    return _influx_response(400, {"error": message}, message)


def _influx_response(status: int, body: object, error: str | None = None) -> Response:
    if error is None:
        return Response(status, orjson.dumps(body), JSON, _VERSION_HEADERS)
    # The error repeats a client's line: only printable ASCII goes into a header.
    shown = "".join(c if " " <= c <= "~" else "?" for c in error[:512]).encode()
    headers = (*_VERSION_HEADERS, (b"x-influxdb-error", shown))
    return Response(status, orjson.dumps(body), JSON, headers)
