"""The ASGI application: lifespan wiring of config → backends → services → routes, and request dispatch."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from telemetry_server.config import Settings
from telemetry_server.errors import StorageUnavailable
from telemetry_server.http.problems import problem_response
from telemetry_server.http.request import Request
from telemetry_server.http.responses import send_response
from telemetry_server.http.router import Router
from telemetry_server.http.types import Receive, Scope, Send
from telemetry_server.ports import MetricStore, QueryCache
from telemetry_server.routes.health import HealthResource
from telemetry_server.routes.metrics import MetricResource
from telemetry_server.services.telemetry_service import MetricService

log = logging.getLogger("telemetry_server")

_INDEX_RETRY_SECONDS = 2.0


@dataclass(slots=True)
class Backends:
    store: MetricStore
    cache: QueryCache


BackendsFactory = Callable[[Settings], Awaitable[Backends]]


async def open_backends(settings: Settings) -> Backends:
    """The real adapters: one MongoDB and one Redis client (each with its pool) for this worker."""
    from telemetry_server.storage.mongo import MongoMetricStore, create_mongo_client
    from telemetry_server.storage.redis_cache import RedisCache, create_redis_client

    store = MongoMetricStore(create_mongo_client(settings), settings.database_name)
    cache = RedisCache(create_redis_client(settings), f"ts:{settings.app_env}", settings.cache_ttl_seconds)
    return Backends(store, cache)


def build_router(backends: Backends, settings: Settings) -> Router:
    service = MetricService(backends.store, backends.cache)
    return Router(
        [
            *HealthResource(backends.store, backends.cache).routes(),
            *MetricResource(service, settings).routes(),
        ]
    )


class App:
    """One per worker process. Backends are opened in the lifespan, after the fork, and closed with it."""

    def __init__(self, settings: Settings, backends_factory: BackendsFactory = open_backends) -> None:
        self.settings = settings
        self._backends_factory = backends_factory
        self._backends: Backends | None = None
        self._router: Router | None = None
        self._index_task: asyncio.Task[None] | None = None
        self._request_ids = itertools.count(1)
        self._id_prefix = f"{os.getpid():x}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, self.settings.max_body_bytes)
        try:
            if self._router is None:
                raise StorageUnavailable("the server is starting")
            handler, _, request.params = self._router.resolve(request.method, request.path)
            response = await handler(request)
        except Exception as exc:
            response = problem_response(exc, f"{self._id_prefix}-{next(self._request_ids):x}")
        await send_response(send, response)

    async def startup(self) -> None:
        self._backends = await self._backends_factory(self.settings)
        self._router = build_router(self._backends, self.settings)
        self._index_task = asyncio.create_task(self._ensure_indexes(self._backends.store))

    async def shutdown(self) -> None:
        if self._index_task is not None:
            self._index_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._index_task
        if self._backends is not None:
            await self._backends.cache.aclose()
            await self._backends.store.aclose()
        self._router = self._backends = None

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
