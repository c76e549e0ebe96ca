"""Tracing end to end: a server started with OTEL_EXPORTER_OTLP_ENDPOINT exports its spans with the OpenTelemetry
SDK over OTLP/HTTP to a receiver on loopback, which decodes them with opentelemetry-proto; the request span is
the child of the client's traceparent, and the spans of what it waited for (MongoDB, Redis, the cache, the group
commit) are its descendants, named and attributed by the semantic conventions."""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanMessage

from tests.integration.conftest import ServerProcess, wait_until


@dataclass(frozen=True)
class ReceivedSpan:
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: int
    attributes: dict[str, Any]
    links: tuple[str, ...]  # the span ids linked to
    error: bool
    service: str


class Receiver:
    """An OTLP/HTTP traces endpoint on loopback that keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.content_types: set[str] = set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.content_types.add(self.headers["content-type"])
                request = ExportTraceServiceRequest.FromString(body)
                receiver.spans += [
                    received(span, resource_spans.resource.attributes)
                    for resource_spans in request.resource_spans
                    for scope_spans in resource_spans.scope_spans
                    for span in scope_spans.spans
                ]
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200 if self.path == "/v1/traces" else 404)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        return [span for span in self.spans if span.trace_id == trace_id]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def received(span: SpanMessage, resource: Any) -> ReceivedSpan:
    return ReceivedSpan(
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_span_id=span.parent_span_id.hex(),
        name=span.name,
        kind=span.kind,
        attributes={kv.key: value(kv.value) for kv in span.attributes},
        links=tuple(link.span_id.hex() for link in span.links),
        error=span.status.code == span.status.STATUS_CODE_ERROR,
        service=next(value(kv.value) for kv in resource if kv.key == "service.name"),
    )


def value(any_value: AnyValue) -> Any:
    return getattr(any_value, any_value.WhichOneof("value"))


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def traced(server_factory: Callable[..., ServerProcess], receiver: Receiver) -> ServerProcess:
    return server_factory(
        workers=1,
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_BSP_SCHEDULE_DELAY="50",
        OTEL_SERVICE_NAME="telemetry-server-under-test",
    )


def traceparent() -> tuple[str, str, str]:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def spans_of(receiver: Receiver, trace_id: str, *, at_least: int) -> list[ReceivedSpan]:
    assert wait_until(lambda: len(receiver.trace(trace_id)) >= at_least, seconds=10), receiver.trace(trace_id)
    time.sleep(0.2)  # a straggler of the same trace
    return receiver.trace(trace_id)


def the(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    found = [span for span in spans if span.name == name]
    assert len(found) == 1, (name, [span.name for span in spans])
    return found[0]


def descendants(spans: list[ReceivedSpan], root: ReceivedSpan) -> list[ReceivedSpan]:
    below = [span for span in spans if span.parent_span_id == root.span_id]
    return below + [deeper for span in below for deeper in descendants(spans, span)]


def test_a_write_is_the_child_of_its_traceparent_and_its_commit_and_stores_are_below_it(
    traced: ServerProcess, receiver: Receiver
) -> None:
    header, trace_id, parent_id = traceparent()
    name = f"trace.{uuid.uuid4().hex[:8]}"
    answer = httpx.post(
        f"{traced.base_url}/metrics",
        json={"name": name, "value": 1.5, "tags": ["host:h1"]},
        headers={"traceparent": header, "user-agent": "tracing-test/1"},
    )
    assert answer.status_code == 201

    spans = spans_of(receiver, trace_id, at_least=4)
    request = the(spans, "create_metrics")
    assert request.parent_span_id == parent_id
    assert request.kind == SpanMessage.SPAN_KIND_SERVER
    assert request.service == "telemetry-server-under-test"
    assert request.attributes["http.request.method"] == "POST"
    assert request.attributes["http.route"] == "/metrics"
    assert request.attributes["url.path"] == "/metrics"
    assert request.attributes["http.response.status_code"] == 201
    assert request.attributes["user_agent.original"] == "tracing-test/1"
    assert request.attributes["client.address"] == "127.0.0.1"
    assert request.attributes["server.port"] == traced.port
    assert request.attributes["telemetry_server.request_id"]
    assert not request.error

    commit = the(spans, "group commit")
    assert commit.parent_span_id == request.span_id
    assert request.span_id in commit.links
    assert commit.attributes["telemetry_server.group_commit.size"] >= 1
    below = descendants(spans, request)
    inserts = [span for span in below if span.attributes.get("db.operation.name") == "insert"]
    assert inserts, [span.name for span in below]
    assert all(span.kind == SpanMessage.SPAN_KIND_CLIENT for span in inserts)
    assert inserts[0].attributes["db.system.name"] == "mongodb"
    assert inserts[0].attributes["db.namespace"] == "telemetry_server_test"
    assert inserts[0].name == f"insert {inserts[0].attributes['db.collection.name']}"
    record = the(spans, "cache record")
    assert record.parent_span_id == commit.span_id
    redis = [span for span in below if span.attributes.get("db.system.name") == "redis"]
    assert redis, [span.name for span in below]  # the invalidation's script
    assert {span.trace_id for span in below} == {trace_id}


def test_a_read_without_traceparent_starts_a_trace_with_its_cache_redis_and_mongodb_spans(
    traced: ServerProcess, receiver: Receiver
) -> None:
    name = f"trace.{uuid.uuid4().hex[:8]}"
    assert httpx.post(f"{traced.base_url}/metrics", json={"name": name, "value": 2.0}).status_code == 201
    url = f"{traced.base_url}/metrics?name={name}"

    def traced_read() -> tuple[ReceivedSpan, list[ReceivedSpan]]:
        before = {span.trace_id for span in receiver.spans}
        assert httpx.get(url).status_code == 200
        assert wait_until(lambda: any(s.name == "list_metrics" and s.trace_id not in before for s in receiver.spans))
        time.sleep(0.3)
        request = next(s for s in receiver.spans if s.name == "list_metrics" and s.trace_id not in before)
        return request, receiver.trace(request.trace_id)

    first, spans = traced_read()
    assert first.parent_span_id == ""  # no traceparent: a trace of its own
    assert first.attributes["http.response.status_code"] == 200
    lookup = the(spans, "cache lookup")
    assert lookup.parent_span_id == first.span_id
    assert lookup.attributes["telemetry_server.cache.hit"] is False
    below_lookup = descendants(spans, lookup)
    assert any(span.attributes.get("db.operation.name") == "MGET" for span in below_lookup), below_lookup
    finds = [s for s in descendants(spans, first) if s.attributes.get("db.system.name") == "mongodb"]
    assert finds, [span.name for span in spans]

    def hit_level() -> str | None:
        _, spans = traced_read()
        found = the(spans, "cache lookup")
        return (
            found.attributes.get("telemetry_server.cache.level")
            if found.attributes["telemetry_server.cache.hit"]
            else None
        )

    assert hit_level() in ("L1", "L2")  # the page stored by the first read


def test_unmatched_requests_and_server_errors_are_named_and_marked(traced: ServerProcess, receiver: Receiver) -> None:
    header, trace_id, _ = traceparent()
    assert httpx.get(f"{traced.base_url}/no-such-route", headers={"traceparent": header}).status_code == 404
    request = the(spans_of(receiver, trace_id, at_least=1), "unmatched")
    assert "http.route" not in request.attributes
    assert request.attributes["http.response.status_code"] == 404
    assert not request.error  # a 4xx is the client's error


def test_the_spans_go_as_protobuf(traced: ServerProcess, receiver: Receiver) -> None:
    header, trace_id, _ = traceparent()
    httpx.get(f"{traced.base_url}/healthz", headers={"traceparent": header})
    spans_of(receiver, trace_id, at_least=1)
    assert receiver.content_types == {"application/x-protobuf"}


def test_concurrent_requests_keep_their_own_traces(traced: ServerProcess, receiver: Receiver) -> None:
    names = [f"trace.{uuid.uuid4().hex[:8]}" for _ in range(12)]
    parents = [traceparent() for _ in names]

    def write(n: int) -> int:
        header = parents[n][0]
        body = {"name": names[n], "value": float(n)}
        return httpx.post(f"{traced.base_url}/metrics", json=body, headers={"traceparent": header}).status_code

    with ThreadPoolExecutor(len(names)) as pool:
        assert list(pool.map(write, range(len(names)))) == [201] * len(names)
    for _, trace_id, parent_id in parents:
        spans = spans_of(receiver, trace_id, at_least=1)
        request = the(spans, "create_metrics")
        assert request.parent_span_id == parent_id
        assert all(span.trace_id == trace_id for span in descendants(spans, request))
    # Every request is carried by a commit: its child when it came first, linked from it otherwise.
    requests = {the(receiver.trace(trace_id), "create_metrics").span_id for _, trace_id, _ in parents}
    assert wait_until(lambda: requests <= {link for c in all_commits(receiver) for link in c.links})


def all_commits(receiver: Receiver) -> list[ReceivedSpan]:
    return [span for span in receiver.spans if span.name == "group commit"]
