"""Python time per request on the hot paths, in-process: the App on in-memory doubles, no sockets.

Run: `.venv/bin/python -m bench.hot_path`. It prints µs per cached `GET /metrics` (an L1 hit) and per single
`POST /metrics`; the PERF comments in telemetry_server cite its figures. `--tracing` measures the same with
tracing on, every request sampled (or as OTEL_TRACES_SAMPLER says), its spans dropped rather than sent.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import orjson

from telemetry_server.app import App, Backends
from telemetry_server.config import Settings
from telemetry_server.services.stats_records import Stats
from tests.fakes import InMemoryMetricStore, InMemoryQueryCache, InMemoryTokenSource

_GET = {"method": "GET", "path": "/metrics", "query_string": b"name=svc01.cpu&tag=region%3Aeu&limit=50"}
_POST = {"method": "POST", "path": "/metrics", "query_string": b""}
_BODY = orjson.dumps({"name": "svc01.cpu", "tags": ["host:h01", "region:eu"], "value": 0.5})


async def _per_request_us(app: App, overrides: dict[str, Any], body: bytes, count: int) -> float:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    scope = {"type": "http", "headers": headers, "client": ("127.0.0.1", 1), **overrides}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    for _ in range(100):  # warm: the listing is cached and parsed once
        await app(scope, receive, send)
    started = time.perf_counter()
    for _ in range(count):
        await app(scope, receive, send)
    return (time.perf_counter() - started) / count * 1e6


async def _measure(tracing: bool) -> None:
    backends = Backends(InMemoryMetricStore(), InMemoryQueryCache(), InMemoryTokenSource())

    async def open_doubles(settings: Settings, stats: Stats) -> Backends:
        return backends

    if tracing:
        from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

        class Dropped(SpanExporter):
            def export(self, spans: Any) -> SpanExportResult:
                return SpanExportResult.SUCCESS

        settings = Settings(log_level="error", tracing_endpoint="http://127.0.0.1:4318")
        app = App(settings, open_doubles, span_exporter=Dropped())
    else:
        app = App(Settings(log_level="error"), open_doubles)
    await app.startup()
    try:
        print(f"cached GET /metrics: {await _per_request_us(app, _GET, b'', 20_000):.1f} µs of Python per request")
        print(f"single POST /metrics: {await _per_request_us(app, _POST, _BODY, 5_000):.1f} µs of Python per request")
    finally:
        await app.shutdown()


if __name__ == "__main__":
    asyncio.run(_measure("--tracing" in sys.argv[1:]))
