"""Handler for OTLP/HTTP metrics (`POST /v1/metrics`), in protobuf or OTLP's JSON, gzipped or not."""

from __future__ import annotations

from telemetry_server.auth.keys import Role
from telemetry_server.auth.policy import Access
from telemetry_server.config import Settings
from telemetry_server.errors import AppError, UnsupportedMediaType
from telemetry_server.http.operation import Operation
from telemetry_server.http.request import Request
from telemetry_server.http.responses import JSON, Response
from telemetry_server.http.router import Route
from telemetry_server.services.ingest_service import IngestService

_PROTOBUF = b"application/x-protobuf"
_RESPONSE = {"type": "string", "format": "binary", "description": "An ExportMetricsServiceResponse."}
_EXPORT = Operation(
    "OTLP/HTTP metrics: an ExportMetricsServiceRequest in protobuf or OTLP JSON, gzip optional "
    "(docs/ingest.md). Errors are a google.rpc.Status in the request's content type, not problem+json; 429 and "
    "503 are to be retried, other errors not.",
    {
        200: (
            "Stored; `partial_success` counts the data points refused and says why.",
            {"application/x-protobuf": {"schema": _RESPONSE}, "application/json": {"schema": {"type": "object"}}},
        )
    },
    (400, 401, 403, 408, 413, 415, 429, 503),
    body={"type": "object", "description": "An ExportMetricsServiceRequest."},
    body_types=("application/x-protobuf", "application/json"),
    error_content={
        "application/x-protobuf": {"schema": {"type": "string", "format": "binary", "description": "A Status."}},
        "application/json": {"schema": {"type": "object", "properties": {"message": {"type": "string"}}}},
    },
)


class OtlpResource:
    def __init__(self, ingest: IngestService, settings: Settings) -> None:
        self._ingest = ingest
        self._settings = settings

    async def export(self, request: Request) -> Response:
        """200 with an ExportMetricsServiceResponse once the points that could be stored are."""
        # Imported at the first export, not at start: OTLP's protobuf messages cost a worker ~35 ms of CPU to import,
        # paid by every cold start otherwise (bench: spawn to the first 200).
        from telemetry_server.ingest.otlp import decode_metrics, export_response, parse_request

        json = _is_json(request)
        settings = self._settings
        request.max_body_bytes = settings.ingest_max_body_bytes
        message = parse_request(await request.body(), json)
        points, outcome = decode_metrics(message, self._ingest.clock(), settings.ingest_max_points)
        await self._ingest.store(request.client_id, points)
        return Response(200, export_response(outcome, json), JSON if json else _PROTOBUF)

    def routes(self) -> list[Route[Access]]:
        return [
            Route(
                "/v1/metrics",
                ("POST",),
                self.export,
                "otlp_metrics",
                role=Role.WRITE,
                operation=_EXPORT,
                problem_body=_status,
            )
        ]


def _is_json(request: Request) -> bool:
    media_type = request.media_type
    if media_type not in (JSON, _PROTOBUF):
        raise UnsupportedMediaType("send an ExportMetricsServiceRequest as application/x-protobuf or application/json")
    return media_type == JSON


def _status(request: Request, error: AppError, request_id: str) -> tuple[bytes, bytes]:
    """OTLP's failure body, in the request's content type (protobuf unless it sent JSON)."""
    from telemetry_server.ingest.otlp import status_body  # see OtlpResource.export

    json = request.media_type == JSON
    message = f"{error.title}: {error.detail} (request id {request_id})"
    return status_body(message, json), JSON if json else _PROTOBUF
