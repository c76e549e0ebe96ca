"""Handler for Prometheus remote_write 1.0 (`POST /api/v1/write`)."""

from __future__ import annotations

from telemetry_server.auth.keys import Role
from telemetry_server.auth.policy import Access
from telemetry_server.config import Settings
from telemetry_server.errors import PointsRefused, UnsupportedContentEncoding, UnsupportedMediaType
from telemetry_server.http.operation import Operation
from telemetry_server.http.request import Request
from telemetry_server.http.responses import Response, empty_response
from telemetry_server.http.router import Route
from telemetry_server.services.ingest_service import IngestService

_PROTOBUF = b"application/x-protobuf"
# Remote_write 2.0 names its message in the content type; 1.0's is the default (its spec's content negotiation).
_V1_MESSAGE = b"prometheus.WriteRequest"
_WRITTEN = empty_response(204)
_WRITE = Operation(
    "Prometheus remote_write 1.0: a snappy-compressed protobuf WriteRequest (docs/ingest.md). 400 is not to be "
    "retried (the valid samples of the request are stored); 429 and 5xx are.",
    {204: ("Every sample stored.", None)},
    (400, 401, 403, 408, 413, 415, 429, 503),
    body={"type": "string", "format": "binary"},
    body_types=("application/x-protobuf",),
)


class RemoteWriteResource:
    def __init__(self, ingest: IngestService, settings: Settings) -> None:
        self._ingest = ingest
        self._settings = settings

    async def write(self, request: Request) -> Response:
        """204 once every sample is stored; 400 naming the first refused sample once the others are."""
        # Imported at the first write, not at start: snappy and protobuf cost a worker ~35 ms of CPU to import, paid
        # by every cold start otherwise (bench: spawn to the first 200).
        from telemetry_server.ingest.remote_write import decode_write_request, decompress_snappy

        _check_content(request)
        settings = self._settings
        request.max_body_bytes = settings.ingest_max_body_bytes
        data = decompress_snappy(await request.raw_body(), settings.ingest_max_body_bytes)
        points, outcome = decode_write_request(data, settings.ingest_max_points)
        await self._ingest.store(request.client_id, points)
        if outcome.refused:
            raise PointsRefused(outcome.accepted, outcome.refused, outcome.first_refusal or "")
        return _WRITTEN

    def routes(self) -> list[Route[Access]]:
        return [Route("/api/v1/write", ("POST",), self.write, "remote_write", role=Role.WRITE, operation=_WRITE)]


def _check_content(request: Request) -> None:
    """Snappy whether or not Content-Encoding says so: some senders (Telegraf's serializer) leave it out."""
    media_type = request.media_type
    if media_type not in (b"", _PROTOBUF):
        raise UnsupportedMediaType("send a remote_write WriteRequest as application/x-protobuf")
    content_type = request.header(b"content-type") or b""
    proto = content_type.partition(b"proto=")[2].split(b";", 1)[0].strip()
    if proto not in (b"", _V1_MESSAGE):
        raise UnsupportedMediaType(f"only remote_write 1.0 ({_V1_MESSAGE.decode()}) is read here")
    encodings = [value.strip().lower() for value in request.header_values(b"content-encoding")]
    if any(encoding not in (b"snappy", b"") for encoding in encodings):
        raise UnsupportedContentEncoding("remote_write bodies are snappy-compressed (block format)")
