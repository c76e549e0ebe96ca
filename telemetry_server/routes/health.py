"""Liveness (`/healthz`: the process answers) and readiness (`/readyz`: MongoDB answers, and not draining)."""

from __future__ import annotations

from collections.abc import Callable

from telemetry_server.auth.policy import OPEN, Access
from telemetry_server.errors import StorageUnavailable
from telemetry_server.http.operation import Operation
from telemetry_server.http.request import Request
from telemetry_server.http.responses import Response, json_response
from telemetry_server.http.router import Route
from telemetry_server.openapi import json_content, ref
from telemetry_server.ports import MetricStore, QueryCache

_ALIVE = json_response({"status": "ok"})
_LIVENESS = Operation(
    "Liveness: the process answers.",
    {200: ("Alive.", json_content({"type": "object", "properties": {"status": {"const": "ok"}}}))},
)
_READINESS = Operation(
    "Readiness: MongoDB answers (Redis is reported, not required) and the server is not draining before a stop.",
    {
        200: ("Ready.", json_content(ref("Readiness"))),
        503: ("MongoDB is unreachable, or the server is draining.", json_content(ref("Readiness"))),
    },
)
_WHEN_DOWN = {
    "mongo": "MongoDB (MONGO_URI) does not answer: requests that need it are answered 503.",
    "redis": "Redis (REDIS_URI) does not answer: listings are served from MongoDB, uncached.",
}
_DRAINING = "The server is stopping: it serves what still comes for SHUTDOWN_DRAIN_SECONDS, then stops listening."


class HealthResource:
    def __init__(self, store: MetricStore, cache: QueryCache, draining: Callable[[], bool] = lambda: False) -> None:
        self._store = store
        self._cache = cache
        self._draining = draining

    async def alive(self, request: Request) -> Response:
        return _ALIVE

    async def ready(self, request: Request) -> Response:
        """503 when MongoDB is unreachable (without Redis the server still serves, uncached), or while draining."""
        try:
            await self._store.ping()
            mongo = "up"
        except StorageUnavailable:
            mongo = "down"
        redis = "up" if await self._cache.ping() else "down"
        draining = self._draining()
        ready = mongo == "up" and not draining
        status = "draining" if draining else "ready" if ready else "unavailable"
        body: dict[str, object] = {"status": status, "mongo": mongo, "redis": redis}
        down = [name for name, state in (("mongo", mongo), ("redis", redis)) if state == "down"]
        details = [_DRAINING] if draining else []
        if down:
            body["down"] = down
            details += [_WHEN_DOWN[name] for name in down]
        if details:
            body["detail"] = " ".join(details)
        return json_response(body, 200 if ready else 503, [] if ready else [(b"retry-after", b"1")])

    def routes(self) -> list[Route[Access]]:
        # Probes come without keys and must never be refused for being frequent.
        return [
            Route("/healthz", ("GET",), self.alive, "healthz", role=OPEN, rate_limited=False, operation=_LIVENESS),
            Route("/readyz", ("GET",), self.ready, "readyz", role=OPEN, rate_limited=False, operation=_READINESS),
        ]
