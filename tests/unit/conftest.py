"""Unit fixtures: an event loop per test, and apps on in-memory backends that are shut down afterwards."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import pytest

from telemetry_server.app import App, Backends, build_components
from telemetry_server.auth.policy import Access
from telemetry_server.config import Settings
from telemetry_server.http.router import Route
from telemetry_server.services.stats_records import Stats
from tests.asgi import AppClient, Lifespan
from tests.fakes import InMemoryMetricStore, InMemoryQueryCache, InMemoryTokenSource


@pytest.fixture
def runner() -> Iterator[asyncio.Runner]:
    """One loop for the whole test, so that an app's lifespan task outlives each request."""
    with asyncio.Runner() as loop_runner:
        yield loop_runner


@dataclass
class Harness:
    app: App
    store: InMemoryMetricStore
    cache: InMemoryQueryCache
    lifespan: Lifespan
    client: AppClient


AppFactory = Callable[..., Harness]


@pytest.fixture
def make_app(runner: asyncio.Runner) -> Iterator[AppFactory]:
    """Build an App on fakes (settings overridable by keyword) and run its lifespan startup."""
    started: list[Lifespan] = []

    def make(
        *,
        store: InMemoryMetricStore | None = None,
        cache: InMemoryQueryCache | None = None,
        tokens: InMemoryTokenSource | None = None,
        start: bool = True,
        draining: Callable[[], bool] = lambda: False,
        **settings: Any,
    ) -> Harness:
        store = store or InMemoryMetricStore()
        cache = cache or InMemoryQueryCache()
        backends = Backends(store, cache, tokens or InMemoryTokenSource())

        async def open_fakes(_: Settings, __: Stats) -> Backends:
            return backends

        app = App(Settings(**settings), open_fakes, draining=draining)
        lifespan = Lifespan(app)
        if start:
            started.append(lifespan)
            answer = runner.run(lifespan.startup())
            assert answer == {"type": "lifespan.startup.complete"}
        return Harness(app, store, cache, lifespan, AppClient(app, runner))

    yield make
    for lifespan in reversed(started):
        if not lifespan.finished:
            runner.run(lifespan.shutdown())


@pytest.fixture
def harness(make_app: AppFactory) -> Harness:
    return make_app()


@pytest.fixture
def app_routes() -> list[Route[Access]]:
    """Every route the app can serve: with a key store and an aggregation store (held, never called here)."""
    backends = Backends(
        InMemoryMetricStore(),
        InMemoryQueryCache(),
        InMemoryTokenSource(),
        keys=cast(Any, object()),
        aggregations=cast(Any, object()),
    )
    return build_components(backends, Settings(), Stats()).router.routes
