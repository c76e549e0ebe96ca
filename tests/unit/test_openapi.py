"""The OpenAPI document is true to the router: every route is in it, and it describes no route that is not."""

from __future__ import annotations

import re
from typing import Any, cast

from telemetry_server.app import Backends, build_components
from telemetry_server.auth.policy import required_roles
from telemetry_server.config import Settings
from telemetry_server.http.router import Route
from telemetry_server.openapi import build_spec
from telemetry_server.services.stats_records import Stats
from tests.fakes import InMemoryKeyStore, InMemoryMetricStore, InMemoryQueryCache, InMemoryTokenSource

_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def all_routes() -> list[Route]:
    """Every route the app can serve: with a key store and an aggregation store (never called here)."""
    backends = Backends(
        InMemoryMetricStore(),
        InMemoryQueryCache(),
        InMemoryTokenSource(),
        keys=InMemoryKeyStore(),
        aggregations=cast(Any, object()),
    )
    return build_components(backends, Settings(), Stats()).router.routes


def router_routes() -> dict[tuple[str, str], str]:
    return {(route.path, method.lower()): route.name for route in all_routes() for method in route.methods}


def spec_operations() -> dict[tuple[str, str], dict[str, object]]:
    paths = build_spec()["paths"]
    return {(path, method): op for path, item in paths.items() for method, op in item.items() if method in _METHODS}


def test_every_route_is_described_and_nothing_else() -> None:
    assert set(router_routes()) == set(spec_operations())


def test_operation_ids_are_route_names_and_security_follows_the_role() -> None:
    routes = router_routes()
    backends_routes = required_roles(all_routes())
    for where, operation in spec_operations().items():
        assert operation["operationId"] == routes[where]
        role = backends_routes[routes[where]]
        assert (operation["security"] == []) == (role is None), where
        assert operation.get("x-required-role") == (role.value if role else None), where
        if role is not None:
            assert "401" in operation["responses"], where  # type: ignore[operator]


def test_path_parameters_are_declared() -> None:
    for (path, _), operation in spec_operations().items():
        declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}  # type: ignore[attr-defined]
        assert declared == set(re.findall(r"{(\w+)}", path)), path


def test_references_resolve() -> None:
    spec = build_spec()
    text = str(spec)
    for name in re.findall(r"#/components/schemas/(\w+)", text):
        assert name in spec["components"]["schemas"], name
