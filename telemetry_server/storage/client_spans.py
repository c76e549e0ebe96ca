"""Spans for the round trips of the storage clients, when tracing is on: MongoDB's from pymongo's command events,
Redis's from wrapping the client's commands and pipelines. Both join the current trace (a request's, a group
commit's) and stay silent outside one, so background upkeep does not flood the collector with root spans.

Imported only when tracing is on (it imports OpenTelemetry). Names and attributes follow OpenTelemetry's
database semantic conventions.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from pymongo.monitoring import CommandFailedEvent, CommandListener, CommandStartedEvent, CommandSucceededEvent

from telemetry_server.storage.redis_client import RedisClient


class MongoCommandSpans(CommandListener):
    """A client span per command. pymongo publishes a command's events in the task that runs it (the async client
    as much as the sync one), so the current span there is the caller's."""

    def __init__(self, tracer: Tracer) -> None:
        self._tracer = tracer
        self._open: dict[tuple[Any, int], Span] = {}  # (connection, request id) → its command's span

    def started(self, event: CommandStartedEvent) -> None:
        if not trace.get_current_span().is_recording():
            return
        collection = event.command.get(event.command_name)
        attributes: dict[str, Any] = {
            "db.system.name": "mongodb",
            "db.namespace": event.database_name,
            "db.operation.name": event.command_name,
        }
        name = event.command_name
        if isinstance(collection, str):
            attributes["db.collection.name"] = collection
            name = f"{event.command_name} {collection}"
        host, port = event.connection_id
        attributes["server.address"], attributes["server.port"] = host, port
        self._open[(event.connection_id, event.request_id)] = self._tracer.start_span(
            name, kind=SpanKind.CLIENT, attributes=attributes
        )

    def succeeded(self, event: CommandSucceededEvent) -> None:
        span = self._open.pop((event.connection_id, event.request_id), None)
        if span is not None:
            span.end()

    def failed(self, event: CommandFailedEvent) -> None:
        span = self._open.pop((event.connection_id, event.request_id), None)
        if span is None:
            return
        code = event.failure.get("code") if isinstance(event.failure, dict) else None
        span.set_attribute("error.type", event.failure.get("codeName", "failed") if code else "failed")
        if code is not None:
            span.set_attribute("db.response.status_code", str(code))
        span.set_status(Status(StatusCode.ERROR, str(event.failure.get("errmsg", ""))[:200]))
        span.end()


def trace_redis(client: RedisClient, tracer: Tracer) -> RedisClient:
    """The client, its commands (scripts included) and its pipelines' round trips now spans."""
    pool = getattr(client, "connection_pool", None)  # a cluster client has one per node instead
    pool_kwargs: dict[str, Any] = pool.connection_kwargs if pool is not None else {}
    attributes: dict[str, Any] = {"db.system.name": "redis", "db.namespace": str(pool_kwargs.get("db", 0))}
    if "host" in pool_kwargs:
        attributes["server.address"], attributes["server.port"] = pool_kwargs["host"], pool_kwargs.get("port", 6379)
    execute_command: Callable[..., Awaitable[Any]] = client.execute_command
    make_pipeline: Callable[..., Any] = client.pipeline

    async def traced_command(*args: Any, **options: Any) -> Any:
        if not trace.get_current_span().is_recording():
            return await execute_command(*args, **options)
        operation = str(args[0]).upper()
        with tracer.start_as_current_span(
            operation, kind=SpanKind.CLIENT, attributes={**attributes, "db.operation.name": operation}
        ):
            return await execute_command(*args, **options)

    def traced_pipeline(*args: Any, **kwargs: Any) -> Any:
        pipeline = make_pipeline(*args, **kwargs)
        execute: Callable[[bool], Awaitable[list[Any]]] = pipeline.execute

        async def traced_execute(raise_on_error: bool = True) -> list[Any]:
            if not trace.get_current_span().is_recording():
                return await execute(raise_on_error)
            batch: dict[str, Any] = {
                "db.operation.name": "PIPELINE",
                "db.operation.batch.size": len(pipeline.command_stack),
            }
            with tracer.start_as_current_span("PIPELINE", kind=SpanKind.CLIENT, attributes={**attributes, **batch}):
                return await execute(raise_on_error)

        _replace(pipeline, "execute", traced_execute)
        return pipeline

    _replace(client, "execute_command", traced_command)
    _replace(client, "pipeline", traced_pipeline)
    return client


def _replace(instance: object, method: str, replacement: Callable[..., Any] | Callable[..., Awaitable[Any]]) -> None:
    # On the instance only: the class, and so every other client, stays untouched.
    setattr(instance, method, replacement)
