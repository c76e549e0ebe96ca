"""The ASGI application: lifespan wiring of config → backends → services → routes, and request dispatch."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from telemetry_server.auth.guard import AccessGuard
from telemetry_server.auth.policy import Access
from telemetry_server.config import RedisTopology, Settings, parse_redis_uri
from telemetry_server.errors import AppError, ConfigurationError, NotFound, StorageUnavailable
from telemetry_server.http.event_stream import (
    EVENT_STREAM,
    EventStream,
    refuse_websocket,
    send_event_stream,
    serve_websocket,
)
from telemetry_server.http.problems import ProblemBody, problem_response
from telemetry_server.http.request import Request
from telemetry_server.http.responses import Response, send_response
from telemetry_server.http.router import Router
from telemetry_server.http.types import Receive, Scope, Send
from telemetry_server.logs import REQUEST_NUMBER, request_id
from telemetry_server.models.timestamps import to_millis, utc_now
from telemetry_server.ports import AggregationStore, ChangeLog, KeyStore, MetricStore, SeriesCatalog, SharedCache
from telemetry_server.prompt.plugin import PromptPlugin, load_prompt_plugin
from telemetry_server.promql.engine import QueryLimits
from telemetry_server.routes.dashboard import DashboardResource
from telemetry_server.routes.health import HealthResource
from telemetry_server.routes.influx import InfluxResource
from telemetry_server.routes.keys import KeyResource
from telemetry_server.routes.metrics import MetricResource
from telemetry_server.routes.openapi import OpenApiResource
from telemetry_server.routes.otlp import OtlpResource
from telemetry_server.routes.prometheus import PrometheusResource
from telemetry_server.routes.query import QueryResource
from telemetry_server.routes.remote_write import RemoteWriteResource
from telemetry_server.routes.series import SeriesResource
from telemetry_server.routes.stats import StatsResource
from telemetry_server.routes.streams import StreamResource
from telemetry_server.services.bulkhead import Bulkhead
from telemetry_server.services.group_commit import GroupCommitter
from telemetry_server.services.ingest_service import IngestService
from telemetry_server.services.key_service import ApiKeyService, KeyRevocations
from telemetry_server.services.live_streams import StreamHub, StreamLimits
from telemetry_server.services.local_cache import LocalCache
from telemetry_server.services.metric_service import MetricService, WritePolicy
from telemetry_server.services.prometheus_service import PrometheusSeries, PrometheusService
from telemetry_server.services.query_service import QueryService
from telemetry_server.services.rate_limit import RateLimiter, TokenSource
from telemetry_server.services.stats_records import Stats
from telemetry_server.services.stats_service import StatsBoard, StatsService
from telemetry_server.services.two_level_cache import TwoLevelCache

if TYPE_CHECKING:  # OpenTelemetry is imported only when tracing is on
    from opentelemetry.sdk.trace.export import SpanExporter

    from telemetry_server.tracing import Answered, Tracing

log = logging.getLogger("telemetry_server")

_INDEX_RETRY_SECONDS = 2.0


class Upkeep(Protocol):
    """Background care of stored data (compaction, retention): every worker runs it, one at a time does work."""

    async def run_periodically(self, period_seconds: float) -> None: ...


@dataclass(slots=True)
class Backends:
    """The adapters one worker talks through; tests pass doubles of the same shape."""

    store: MetricStore
    cache: SharedCache
    tokens: TokenSource
    board: StatsBoard | None = None
    keys: KeyStore | None = None  # without one, /admin/keys is not served and auth cannot be on
    revocations: KeyRevocations | None = None  # without one, a revocation reaches workers by their key cache's expiry
    series: SeriesCatalog | None = None  # without one, /series/names and /series/tags are not served
    aggregations: AggregationStore | None = None  # without one, /metrics/aggregate and /query are not served
    prometheus: PrometheusSeries | None = None  # without one (or without aggregations), /api/v1/query... are not
    upkeep: Upkeep | None = None  # without one, small buckets stay small and nothing expires but in answers
    changes: ChangeLog | None = None  # without one, live streams (/metrics/stream, /metrics/ws) are not served


BackendsFactory = Callable[[Settings, Stats], Awaitable[Backends]]


async def open_backends(settings: Settings, stats: Stats) -> Backends:
    """The real adapters: one MongoDB and one Redis client (each with its pool) for this worker."""
    from telemetry_server.storage.bucket_aggregation import BucketAggregationStore
    from telemetry_server.storage.bucket_series_source import BucketSeriesSource
    from telemetry_server.storage.bucket_upkeep import BucketUpkeep
    from telemetry_server.storage.mongo import create_mongo_client
    from telemetry_server.storage.mongo_buckets import MongoBucketStore
    from telemetry_server.storage.mongo_keys import MongoKeyStore
    from telemetry_server.storage.redis_cache import RedisCache
    from telemetry_server.storage.redis_change_log import RedisChangeLog
    from telemetry_server.storage.redis_client import create_redis_client
    from telemetry_server.storage.redis_rate_limit import RedisTokenSource
    from telemetry_server.storage.redis_revocations import RedisKeyRevocations
    from telemetry_server.storage.redis_stats import RedisStatsBoard

    namespace = f"ts:{settings.app_env}"
    assert settings.redis_uri is not None
    redis = create_redis_client(settings)
    subscriber = create_redis_client(settings, subscriber=True)
    command_listeners = []
    if settings.tracing_endpoint is not None:
        from telemetry_server.storage.client_spans import MongoCommandSpans, trace_redis
        from telemetry_server.tracing import tracer

        command_listeners.append(MongoCommandSpans(tracer()))
        redis = trace_redis(redis, tracer())
    mongo = create_mongo_client(settings, stats.pool_wait_ms.observe, command_listeners)
    store = MongoBucketStore(
        mongo,
        settings.database_name,
        settings.series_max,
        settings.retention,
        listing_read_preference=settings.mongo_read_preference,
    )
    # One series index per worker: aggregates and PromQL resolve filters through the store's.
    aggregations = BucketAggregationStore(
        mongo[settings.database_name], store.registry, retention=settings.retention, rollups=settings.rollups
    )
    return Backends(
        store=store,
        cache=RedisCache(
            redis,
            subscriber,
            namespace,
            settings.cache_ttl_seconds,
            settings.cache_backlog_max,
            drop_after_outage=parse_redis_uri(settings.redis_uri).topology is not RedisTopology.STANDALONE,
        ),
        tokens=RedisTokenSource(redis, namespace, settings.rate_limit_per_second, settings.rate_limit_burst),
        board=RedisStatsBoard(redis, namespace),
        keys=MongoKeyStore(mongo, settings.database_name),
        series=store.registry,
        upkeep=BucketUpkeep.from_settings(mongo[settings.database_name], settings),
        revocations=RedisKeyRevocations(redis, subscriber, namespace),
        aggregations=aggregations,
        prometheus=BucketSeriesSource(store.registry, aggregations),
        changes=RedisChangeLog(redis, subscriber, namespace, settings.stream_max_len),
    )


def open_prompt_parser(settings: Settings, tracing: Tracing | None = None) -> PromptPlugin | None:
    """The parser behind the prompt rules: a QUERY_PARSER plugin, the LLM parser, or none. With tracing on, the
    LLM's requests carry the trace context of the request they serve."""
    if settings.query_llm_url is None or settings.query_llm_model is None:
        return load_prompt_plugin(settings.query_parser)
    from telemetry_server.services.llm_prompt_parser import LlmPromptParser  # httpx: imported only when used

    return LlmPromptParser.connect(
        settings.query_llm_url,
        settings.query_llm_model,
        settings.query_llm_timeout_ms / 1000,
        settings.query_llm_api_key,
        on_request=tracing.inject_trace_context if tracing is not None else None,
    )


@dataclass(slots=True)
class Components:
    """What one worker runs, built from its backends in the lifespan."""

    router: Router[Access]
    metrics: MetricService
    cache: TwoLevelCache
    limiter: RateLimiter
    stats_service: StatsService
    queries: QueryService | None = None
    streams: StreamHub | None = None


def open_streams(changes: ChangeLog | None, settings: Settings) -> StreamHub | None:
    if changes is None:
        return None
    limits = StreamLimits(
        per_worker=settings.stream_max_per_worker,
        per_key=settings.stream_max_per_key,
        queue_max=settings.stream_queue_max,
        disconnect_lagging=settings.stream_lag_policy == "disconnect",
        keepalive_seconds=settings.stream_keepalive_seconds,
    )
    return StreamHub(changes, limits)


def build_components(
    backends: Backends,
    settings: Settings,
    stats: Stats,
    tracing: Tracing | None = None,
    draining: Callable[[], bool] = lambda: False,
) -> Components:
    local = LocalCache(
        settings.l1_cache_entries,
        settings.l1_cache_ttl_ms / 1000,
        max_bytes=settings.l1_cache_bytes,
        page_ttl_seconds=settings.cache_ttl_seconds,
    )
    echo_timeout = settings.redis_timeout_ms / 1000
    cache = (
        TwoLevelCache(local, backends.cache, stats, echo_timeout_seconds=echo_timeout)
        if tracing is None
        else tracing.cache(local, backends.cache, stats, echo_timeout_seconds=echo_timeout)
    )
    policy = WritePolicy(
        group_max=settings.write_batch_max,
        group_delay_seconds=settings.write_batch_delay_ms / 1000,
        group_in_flight=settings.write_batch_concurrency,
        chunk_size=settings.write_chunk_size,
    )
    listings = Bulkhead(
        settings.listing_concurrency, settings.query_timeout_ms / 1000, "the listing", "narrow the filters or retry"
    )
    streams = open_streams(backends.changes, settings)
    metrics = MetricService(
        backends.store,
        cache,
        policy,
        on_batch=stats.batch_sizes.observe,
        filtered_listings=listings,
        group_committer=GroupCommitter if tracing is None else tracing.group_committer,
        on_stored=streams.publish if streams is not None else None,
    )
    limiter = RateLimiter(
        backends.tokens, settings.rate_limit_per_second, settings.rate_limit_burst, on_limited=stats.count_limited
    )
    stats_service = StatsService(stats, backends.board)
    queries = None
    if backends.aggregations is not None:
        queries = QueryService(
            backends.aggregations,
            backends.store,
            cache,
            plugin=open_prompt_parser(settings, tracing),
            max_limit=settings.max_page_size,
            concurrency=settings.query_concurrency,
            timeout_seconds=settings.query_timeout_ms / 1000,
        )
    ingest = IngestService(metrics, limiter)
    prometheus = None
    promql_seconds = settings.promql_timeout.total_seconds()
    if queries is not None and backends.prometheus is not None:
        prometheus = PrometheusService(
            backends.prometheus,
            cache,
            QueryLimits(settings.promql_max_series, settings.promql_max_points, promql_seconds),
            queries.bulkhead.sharing(promql_seconds, "the PromQL query", "narrow the window or retry"),
            clock_ms=lambda: to_millis(utc_now()),
        )
    routes = [
        *HealthResource(backends.store, cache, draining).routes(),
        *MetricResource(metrics, limiter, settings).routes(),
        *InfluxResource(ingest, settings).routes(),
        *RemoteWriteResource(ingest, settings).routes(),
        *OtlpResource(ingest, settings).routes(),
        *(QueryResource(queries).routes() if queries is not None else []),
        *(PrometheusResource(prometheus).routes() if prometheus is not None else []),
        *StatsResource(stats_service).routes(),
        *(StreamResource(streams, settings).routes() if streams is not None else []),
        *(
            KeyResource(ApiKeyService(backends.keys, revocations=backends.revocations)).routes()
            if backends.keys is not None
            else []
        ),
        *(SeriesResource(backends.series).routes() if backends.series is not None else []),
        *DashboardResource().routes(),
    ]
    router = Router([*routes, *OpenApiResource(routes).routes()])
    return Components(router, metrics, cache, limiter, stats_service, queries, streams)


class App:
    """One per worker process. Backends are opened in the lifespan, after the fork, and closed with it."""

    def __init__(
        self,
        settings: Settings,
        backends_factory: BackendsFactory = open_backends,
        span_exporter: SpanExporter | None = None,  # tests: where spans go instead of OTLP/HTTP
        draining: Callable[[], bool] = lambda: False,
    ) -> None:
        self.settings = settings
        self._draining = draining
        self.stats = Stats()
        self._backends_factory = backends_factory
        self._backends: Backends | None = None
        self._components: Components | None = None
        self._guard = AccessGuard(settings)
        self._tasks: list[asyncio.Task[None]] = []
        self._request_numbers = itertools.count(1)
        self._span_exporter = span_exporter
        self._tracing: Tracing | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            # Every line logged while the request is served carries its id (telemetry_server/logs.py).
            token = REQUEST_NUMBER.set(next(self._request_numbers))
            try:
                if self._tracing is None:
                    await self._http(scope, receive, send)
                else:
                    await self._tracing.serve(scope, receive, send, self._http)
            finally:
                REQUEST_NUMBER.reset(token)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> Answered:
        started = time.perf_counter()
        settings = self.settings
        request = Request(
            scope, receive, settings.max_body_bytes, settings.max_json_depth, settings.http_body_timeout_ms / 1000
        )
        name = "unmatched"
        path = None
        quota_headers: list[tuple[bytes, bytes]] = []
        problem_body: ProblemBody | None = None
        try:
            components = self._components
            if components is None:
                raise StorageUnavailable("the server is starting")
            route, request.params = components.router.resolve(request.method, request.path)
            name, path = route.name, route.path
            if route.problem_body is not None:
                problem_body = functools.partial(route.problem_body, request)
            await self._guard.authorize(request, name)  # first: the rate limiter counts per key
            if route.rate_limited and components.limiter.enabled:
                quota_headers = (await components.limiter.admit(request.client_id)).headers()
            response = await route.handler(request)
        except Exception as exc:
            response = problem_response(exc, request_id(REQUEST_NUMBER.get() or 0), problem_body)
            quota_headers = []  # a refusal carries its own (a 429 its quota)
        if isinstance(response, EventStream):
            if request.method == "HEAD":  # the headers of a stream that is not held open
                response.feed.close()
                response = Response(200, b"", EVENT_STREAM)
            else:
                self.stats.observe_request(name, 200, (time.perf_counter() - started) * 1000)  # as it opens
                await send_event_stream(send, receive, response)
                return name, path, 200
        await send_response(send, response, quota_headers, head=request.method == "HEAD")
        self.stats.observe_request(name, response.status, (time.perf_counter() - started) * 1000)
        return name, path, response.status

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The handshake is authorized and rate limited as a GET of its route; a refusal closes the socket
        with 4000 + the status the GET would have had."""
        request = Request(scope, receive, 0)
        try:
            components = self._components
            if components is None:
                raise StorageUnavailable("the server is starting")
            route, request.params = components.router.resolve("GET", request.path)
            await self._guard.authorize(request, route.name)
            if route.rate_limited and components.limiter.enabled:
                await components.limiter.admit(request.client_id)
            stream = await route.handler(request)
            if not isinstance(stream, EventStream):
                raise NotFound(f"no WebSocket at {request.path}")
        except Exception as exc:
            refusal = problem_response(exc, request_id(next(self._request_numbers)))
            detail = exc.detail if isinstance(exc, AppError) else "an unexpected error occurred"
            await refuse_websocket(send, receive, refusal.status, detail)
            return
        await serve_websocket(send, receive, stream)

    async def startup(self) -> None:
        if self.settings.tracing_endpoint is not None:
            try:
                from telemetry_server.tracing import Tracing
            except ImportError as exc:
                raise ConfigurationError(
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    f"tracing needs the OpenTelemetry SDK: pip install 'telemetry-server[tracing]' ({exc})",
                ) from exc
            self._tracing = Tracing.start(self._span_exporter)
        self._backends = backends = await self._backends_factory(self.settings, self.stats)
        self._components = components = build_components(
            backends, self.settings, self.stats, self._tracing, draining=self._draining
        )
        self._guard.start(backends.keys, components.router.routes, backends.changes)
        cache = components.cache
        self._spawn(self._ensure_indexes(backends.store))
        self._spawn(backends.cache.listen(cache.on_message, cache.on_subscription))
        if backends.revocations is not None and self._guard.enabled:
            self._spawn(backends.revocations.listen(self._guard.on_revoked))
        self._spawn(components.stats_service.post_periodically())
        if backends.upkeep is not None and self.settings.upkeep_period_seconds:
            self._spawn(backends.upkeep.run_periodically(self.settings.upkeep_period_seconds))
        if components.streams is not None:
            self._spawn(components.streams.run())
            _before_termination(components.streams.close)

    async def shutdown(self) -> None:
        """Store what is still gathering, stop background work, close the pools."""
        if self._components is not None:
            if self._components.streams is not None:
                self._components.streams.close()
            await self._components.metrics.drain()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._components is not None and self._components.queries is not None:
            await self._components.queries.aclose()
        if self._backends is not None:
            await self._backends.cache.aclose()
            await self._backends.store.aclose()
        self._components = self._backends = None
        if self._tracing is not None:
            self._tracing.shutdown()  # sends the spans still batched
            self._tracing = None

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(work))

    async def _ensure_indexes(self, store: MetricStore) -> None:
        """Idempotent; retried in the background so a worker can start while MongoDB is still down."""
        while True:
            try:
                await store.ensure_indexes()
                return
            except StorageUnavailable as exc:
                log.warning("indexes not ensured yet: %s; retrying", exc.detail)
                await asyncio.sleep(_INDEX_RETRY_SECONDS)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _before_termination(callback: Callable[[], None]) -> None:
    """Run `callback` when the worker is told to stop, ahead of the handler already set (Granian's),
    which still runs. Granian sends the lifespan's shutdown only once every response has ended, and a live
    stream never ends by itself: the streams must be told to say `bye` at the signal."""
    for number in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(number)
        if not callable(previous):
            continue  # not under Granian (the default action, or ignored): nothing to go ahead of

        def on_signal(signum: int, frame: Any, previous: Callable[[int, Any], Any] = previous) -> None:
            # At once, not scheduled: Granian's own handler is a callback of the loop (add_signal_handler), run
            # in the same turn, and it closes open WebSockets; the streams' `bye` must be queued before it.
            callback()
            previous(signum, frame)

        with contextlib.suppress(ValueError):  # not the main thread (an app run in tests): no signals here
            signal.signal(number, on_signal)
