"""Tracing in-process: off, the app imports no OpenTelemetry; on (spans kept in memory), the request span, the
cache's and the group commit's spans, their parentage and links, and the ids on log lines."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from telemetry_server.app import App, Backends
from telemetry_server.config import Settings
from telemetry_server.logs import JsonFormatter, RequestFields
from telemetry_server.services.stats_records import Stats
from telemetry_server.tracing import Tracing
from tests.asgi import AppClient, Lifespan
from tests.fakes import InMemoryMetricStore, InMemoryQueryCache, InMemoryTokenSource

ROOT = Path(__file__).resolve().parents[2]
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
TRACEPARENT = ("traceparent", f"00-{TRACE_ID}-{PARENT_ID}-01")
METRIC = {"name": "cpu.load", "tags": ["host:web-1"], "value": 0.5}


def test_with_tracing_off_no_opentelemetry_module_is_imported() -> None:
    script = textwrap.dedent(
        """
        import asyncio, sys
        from telemetry_server.app import App, Backends
        from telemetry_server.config import load_settings
        from tests.asgi import Lifespan, request
        from tests.fakes import InMemoryMetricStore, InMemoryQueryCache, InMemoryTokenSource

        async def main():
            backends = Backends(InMemoryMetricStore(), InMemoryQueryCache(), InMemoryTokenSource())
            async def open_fakes(settings, stats):
                return backends
            app = App(load_settings({"LOG_LEVEL": "error"}), open_fakes)
            lifespan = Lifespan(app)
            await lifespan.startup()
            headers = [("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")]
            written = await request(app, "POST", "/metrics", json={"name": "a", "value": 1}, headers=headers)
            assert written.status == 201
            assert (await request(app, "GET", "/metrics", query="name=a", headers=headers)).status == 200
            await lifespan.shutdown()

        asyncio.run(main())
        print(" ".join(sorted(m for m in sys.modules if m.startswith(("opentelemetry", "telemetry_server.tracing")))))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.split())
    # opentelemetry.proto holds OTLP's messages for /v1/metrics: data classes, not the API or the SDK.
    assert {module for module in loaded if not module.startswith("opentelemetry.proto")} <= {"opentelemetry"}


class Traced:
    """An App on in-memory backends with tracing on, its spans kept in memory."""

    def __init__(self, runner: asyncio.Runner) -> None:
        self.exporter = InMemorySpanExporter()
        self.store = InMemoryMetricStore()
        backends = Backends(self.store, InMemoryQueryCache(), InMemoryTokenSource())

        async def open_fakes(_: Settings, __: Stats) -> Backends:
            return backends

        settings = Settings(tracing_endpoint="http://127.0.0.1:4318", log_level="error")
        self.app = App(settings, open_fakes, span_exporter=self.exporter)
        self.lifespan = Lifespan(self.app)
        self.runner = runner
        assert runner.run(self.lifespan.startup())["type"] == "lifespan.startup.complete"
        self.client = AppClient(self.app, runner)

    def spans(self) -> list[ReadableSpan]:
        """Every span, once the app is shut down (which sends what is batched)."""
        if not self.lifespan.finished:
            self.runner.run(self.lifespan.shutdown())
        return list(self.exporter.get_finished_spans())


@pytest.fixture
def traced(runner: asyncio.Runner) -> Iterator[Traced]:
    traced = Traced(runner)
    yield traced
    traced.spans()


def named(spans: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


def hex_ids(span: ReadableSpan) -> tuple[str, str]:
    assert span.context is not None
    return f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}"


def parent_of(span: ReadableSpan) -> str | None:
    return None if span.parent is None else f"{span.parent.span_id:016x}"


def test_the_request_span_is_the_child_of_traceparent_and_carries_the_http_attributes(traced: Traced) -> None:
    assert traced.client.post("/metrics", json=METRIC, headers=[TRACEPARENT, ("user-agent", "ua/1")]).status == 201

    [request] = named(traced.spans(), "create_metrics")
    assert hex_ids(request)[0] == TRACE_ID
    assert parent_of(request) == PARENT_ID
    assert request.kind is SpanKind.SERVER
    assert (
        dict(request.attributes or {}).items()
        >= {
            "http.request.method": "POST",
            "http.route": "/metrics",
            "url.path": "/metrics",
            "url.scheme": "http",
            "http.response.status_code": 201,
            "server.address": "testserver",
            "server.port": 80,
            "client.address": "127.0.0.1",
            "user_agent.original": "ua/1",
        }.items()
    )
    assert request.status.status_code is StatusCode.UNSET


def test_a_server_error_marks_the_span_and_a_client_error_does_not(traced: Traced) -> None:
    assert traced.client.get("/no-such-route").status == 404
    traced.store.failure = RuntimeError("down")
    assert traced.client.get("/metrics").status == 500

    spans = traced.spans()
    [unmatched] = named(spans, "unmatched")
    assert unmatched.status.status_code is StatusCode.UNSET
    assert unmatched.attributes is not None
    assert "http.route" not in unmatched.attributes
    [failed] = named(spans, "list_metrics")
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes is not None
    assert failed.attributes["error.type"] == "500"


def test_an_unknown_method_is_other(traced: Traced) -> None:
    assert traced.client.request("BREW", "/metrics").status == 405

    [request] = named(traced.spans(), "unmatched")
    assert request.attributes is not None
    assert request.attributes["http.request.method"] == "_OTHER"
    assert request.attributes["http.request.method_original"] == "BREW"


def test_cache_lookups_say_hit_or_miss_under_the_request(traced: Traced) -> None:
    traced.client.post("/metrics", json=METRIC)
    for _ in range(2):
        assert traced.client.get("/metrics", query="name=cpu.load", headers=[TRACEPARENT]).status == 200

    spans = traced.spans()
    requests = {hex_ids(span)[1] for span in named(spans, "list_metrics")}
    lookups = named(spans, "cache lookup")
    assert len(lookups) == 2
    assert {parent_of(lookup) for lookup in lookups} == requests
    first, second = (dict(lookup.attributes or {}) for lookup in lookups)
    assert first == {"telemetry_server.cache.hit": False}
    # The fake shared cache has no generation to give: its hit reads as L1's (Redis's are tested for real).
    assert second["telemetry_server.cache.hit"] is True


def test_a_group_commit_is_a_child_of_its_first_request_and_linked_both_ways(traced: Traced) -> None:
    async def three_writes() -> list[int]:
        from tests.asgi import request

        headers = [("traceparent", f"00-{TRACE_ID}-{n:016x}-01") for n in (1, 2, 3)]
        replies = await asyncio.gather(
            *(request(traced.app, "POST", "/metrics", json=METRIC, headers=[header]) for header in headers)
        )
        return [reply.status for reply in replies]

    assert traced.runner.run(three_writes()) == [201] * 3

    spans = traced.spans()
    requests = named(spans, "create_metrics")
    [commit] = named(spans, "group commit")
    assert commit.attributes is not None
    assert commit.attributes["telemetry_server.group_commit.size"] == 3
    request_ids = [hex_ids(request)[1] for request in requests]
    assert parent_of(commit) in request_ids
    assert sorted(f"{link.context.span_id:016x}" for link in commit.links) == sorted(request_ids)
    commit_id = hex_ids(commit)[1]
    others = [request for request in requests if hex_ids(request)[1] != parent_of(commit)]
    assert [[f"{link.context.span_id:016x}" for link in request.links] for request in others] == [[commit_id]] * 2
    [record] = named(spans, "cache record")
    assert parent_of(record) == commit_id


def test_log_lines_in_a_request_carry_its_request_id_and_trace_ids(traced: Traced) -> None:
    lines: list[dict[str, Any]] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            import orjson

            lines.append(orjson.loads(JsonFormatter().format(record)))

    handler = Keep()
    handler.addFilter(RequestFields())
    logger = logging.getLogger("telemetry_server")
    logger.addHandler(handler)
    try:
        traced.store.failure = RuntimeError("down")
        problem = traced.client.get("/metrics", headers=[TRACEPARENT]).json()
        logging.getLogger("telemetry_server").error("outside any request")
    finally:
        logger.removeHandler(handler)

    [request] = named(traced.spans(), "list_metrics")
    in_request, outside = lines
    assert in_request["request_id"] == problem["request_id"]
    assert (in_request["trace_id"], in_request["span_id"]) == hex_ids(request)
    assert in_request["level"] == "ERROR"
    assert "RuntimeError: down" in in_request["exception"]
    assert not {"request_id", "trace_id", "span_id"} & set(outside)


def test_tracing_shutdown_stops_putting_trace_ids_on_lines() -> None:
    tracing = Tracing.start(InMemorySpanExporter())
    tracing.shutdown()
    record = logging.LogRecord("telemetry_server", logging.INFO, __file__, 1, "hello", None, None)

    RequestFields().filter(record)

    assert (record.trace_id, record.span_id, record.request_id) == (None, None, None)  # type: ignore[attr-defined]


def test_outgoing_requests_carry_the_current_trace_context() -> None:
    import httpx

    tracing = Tracing.start(InMemorySpanExporter())
    try:
        outgoing = httpx.Request("POST", "http://llm.invalid/v1/chat/completions")
        with tracing.tracer.start_as_current_span("list_metrics") as span:
            asyncio.run(tracing.inject_trace_context(outgoing))
        trace_id, span_id = f"{span.get_span_context().trace_id:032x}", f"{span.get_span_context().span_id:016x}"
    finally:
        tracing.shutdown()

    assert outgoing.headers["traceparent"].startswith(f"00-{trace_id}-{span_id}-")  # then the flags: sampled
