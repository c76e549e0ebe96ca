"""OpenTelemetry tracing of our own requests: the SDK exporting over OTLP/HTTP, the request span, W3C trace
context in and out, and the spans of the cache and of group commits.

Imported only when an OTLP endpoint turns tracing on (`Settings.tracing_endpoint`): with tracing off, nothing
imports OpenTelemetry and a request pays for none of this. The storage clients' spans are in
storage/client_spans.py, where pymongo and redis may be imported.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

from opentelemetry import context, propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, Tracer, format_span_id, format_trace_id

from telemetry_server import logs
from telemetry_server.http.types import Receive, Scope, Send
from telemetry_server.ports import Lookup, SharedCache
from telemetry_server.services.cache_dependency import PointChange
from telemetry_server.services.group_commit import GroupCommitter
from telemetry_server.services.local_cache import LocalCache
from telemetry_server.services.stats_records import Stats
from telemetry_server.services.two_level_cache import TwoLevelCache

log = logging.getLogger("telemetry_server.tracing")

In = TypeVar("In")
Out = TypeVar("Out")

# What a request's dispatch tells its span once answered: the route's name (`unmatched` when none) and path
# (None then), and the status sent.
Answered = tuple[str, str | None, int]
Dispatch = Callable[[Scope, Receive, Send], Awaitable[Answered]]

# HTTP semantic conventions: any other method is `_OTHER`, so a client cannot grow the attribute's values.
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"})

_tracer: Tracer | None = None


class _ScopeHeaders(Getter[Scope]):
    """Reads `traceparent` and `tracestate` from an ASGI scope's raw header list (names are lower case)."""

    def get(self, carrier: Scope, key: str) -> list[str] | None:
        name = key.lower().encode()
        values = [value.decode("latin-1") for header, value in carrier["headers"] if header == name]
        return values or None

    def keys(self, carrier: Scope) -> list[str]:
        return [header.decode("latin-1") for header, _ in carrier["headers"]]


_SCOPE_HEADERS = _ScopeHeaders()


class Tracing:
    """One per worker, started in the lifespan (after the fork: the batch processor runs a thread) and shut down
    with it, sending what is still batched."""

    def __init__(self, provider: TracerProvider) -> None:
        self._provider = provider
        self.tracer = provider.get_tracer("telemetry_server")

    @classmethod
    def start(cls, exporter: SpanExporter | None = None) -> Tracing:
        """The SDK configured by the standard OTEL_* variables (endpoint, headers, sampler, batch sizes, resource),
        exporting over OTLP/HTTP unless `exporter` is given (tests)."""
        global _tracer
        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()
        resource = Resource.create()
        if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
            resource = resource.merge(Resource({SERVICE_NAME: "telemetry-server"}))
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(exporter))
        tracing = cls(provider)
        _tracer = tracing.tracer
        logs.follow_traces(_current_ids)
        return tracing

    def shutdown(self) -> None:
        global _tracer
        logs.follow_traces(None)
        _tracer = None
        self._provider.shutdown()

    async def serve(self, scope: Scope, receive: Receive, send: Send, dispatch: Dispatch) -> None:
        """Serve a request in its span: the child of the client's `traceparent`, if it sent one; current while it
        is served, so the spans of what it waits for are its children."""
        parent = propagate.extract(scope, getter=_SCOPE_HEADERS)
        span = self.tracer.start_span(
            scope["method"], parent, SpanKind.SERVER, _request_attributes(scope), record_exception=False
        )
        token = context.attach(trace.set_span_in_context(span, parent))
        try:
            name, path, status = await dispatch(scope, receive, send)
        except BaseException as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            span.set_attribute("error.type", type(exc).__qualname__)
            raise
        else:
            span.update_name(name)
            if path is not None:
                span.set_attribute("http.route", path)
            span.set_attribute("http.response.status_code", status)
            if status >= 500:  # a 4xx is the client's error, not the server's (HTTP semantic conventions)
                span.set_status(Status(StatusCode.ERROR))
                span.set_attribute("error.type", str(status))
        finally:
            context.detach(token)
            span.end()

    async def inject_trace_context(self, request: Any) -> None:
        """An httpx request hook: the current trace's context goes out in the request's headers (traceparent)."""
        propagate.inject(request.headers)

    def cache(self, local: LocalCache, shared: SharedCache, stats: Stats, echo_timeout_seconds: float) -> TwoLevelCache:
        """A TwoLevelCache whose lookups and writes' records are spans."""
        return _TracedCache(self.tracer, local, shared, stats, echo_timeout_seconds)

    def group_committer(
        self, commit: Callable[[Sequence[In]], Awaitable[Sequence[Out]]], **options: Any
    ) -> GroupCommitter[In, Out]:
        """A GroupCommitter whose every commit is a span (arguments as GroupCommitter's)."""
        return _TracedGroupCommitter(self.tracer, commit, **options)


def tracer() -> Tracer:
    """The tracer of the worker's Tracing, for the storage clients opened after it started."""
    if _tracer is None:
        raise RuntimeError("tracing has not been started")
    return _tracer


def _current_ids() -> tuple[str, str] | None:
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return format_trace_id(span_context.trace_id), format_span_id(span_context.span_id)


def _request_attributes(scope: Scope) -> dict[str, Any]:
    method = scope["method"]
    attributes: dict[str, Any] = {
        "http.request.method": method if method in _KNOWN_METHODS else "_OTHER",
        "url.path": scope["path"],
        "url.scheme": scope.get("scheme", "http"),
        "network.protocol.version": scope.get("http_version", "1.1"),
    }
    if method not in _KNOWN_METHODS:
        attributes["http.request.method_original"] = method
    server = scope.get("server")
    if server:
        attributes["server.address"] = server[0]
        if server[1] is not None:
            attributes["server.port"] = int(server[1])  # Granian gives it as text
    if scope.get("client"):
        attributes["client.address"] = scope["client"][0]
    for header, value in scope["headers"]:
        if header == b"user-agent":
            attributes["user_agent.original"] = value.decode("latin-1")
    number = logs.REQUEST_NUMBER.get()
    if number is not None:
        attributes["telemetry_server.request_id"] = logs.request_id(number)
    return attributes


class _TracedCache(TwoLevelCache):
    def __init__(
        self, tracer: Tracer, local: LocalCache, shared: SharedCache, stats: Stats, echo_timeout_seconds: float
    ) -> None:
        super().__init__(local, shared, stats, echo_timeout_seconds)
        self._tracer = tracer

    async def lookup(self, dependency: str, query_key: str) -> Lookup:
        if not trace.get_current_span().is_recording():  # PERF: an unsampled request pays for no child span
            return await super().lookup(dependency, query_key)
        with self._tracer.start_as_current_span("cache lookup") as span:
            found = await super().lookup(dependency, query_key)
            hit = found.value is not None
            span.set_attribute("telemetry_server.cache.hit", hit)
            if hit:  # only Redis gives an entry a generation
                span.set_attribute("telemetry_server.cache.level", "L2" if found.generation else "L1")
            return found

    async def record(self, changes: Sequence[PointChange], since: int | None) -> None:
        if not trace.get_current_span().is_recording():
            await super().record(changes, since)
            return
        with self._tracer.start_as_current_span("cache record", attributes={"telemetry_server.changes": len(changes)}):
            await super().record(changes, since)


class _TracedGroupCommitter(GroupCommitter[In, Out]):
    """Each commit is a span: the child of the first request it carries, linked to every one of them; each of
    those requests' spans is linked back to it. A commit carrying no sampled request has none."""

    def __init__(self, tracer: Tracer, commit: Callable[[Sequence[In]], Awaitable[Sequence[Out]]], **options: Any):
        self._tracer = tracer
        self._untraced = commit
        self._carried: dict[int, Span] = {}  # id(item) → the span of the request that submitted it
        super().__init__(self._traced_commit, **options)

    async def submit(self, item: In) -> Out:
        span = trace.get_current_span()
        if span.is_recording():
            self._carried[id(item)] = span
        return await super().submit(item)

    async def _traced_commit(self, items: Sequence[In]) -> Sequence[Out]:
        requests = _present(self._carried.pop(id(item), None) for item in items)
        if not requests:  # none sampled
            return await self._untraced(items)
        # The batch runs in a task of its own: its parent is said, never inherited from whoever started the task.
        parent = trace.set_span_in_context(requests[0])
        links = [Link(request.get_span_context()) for request in requests]
        attributes = {"telemetry_server.group_commit.size": len(items)}
        with self._tracer.start_as_current_span(
            "group commit", parent, SpanKind.INTERNAL, attributes, links
        ) as commit_span:
            try:
                return await self._untraced(items)
            finally:
                for request in requests[1:]:
                    request.add_link(commit_span.get_span_context())


def _present(spans: Iterable[Span | None]) -> list[Span]:
    return [span for span in spans if span is not None]
