"""The OpenAPI document is derived from the route table: every route is in it, with its name, role and path
parameters, and it describes no route that is not."""

from __future__ import annotations

import re

from telemetry_server.auth.policy import Access, required_roles
from telemetry_server.http.router import Route
from telemetry_server.openapi import build_spec
from tests.unit.conftest import Harness

_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def router_routes(routes: list[Route[Access]]) -> dict[tuple[str, str], str]:
    return {(route.path, method.lower()): route.name for route in routes for method in route.methods}


def spec_operations(routes: list[Route[Access]]) -> dict[tuple[str, str], dict[str, object]]:
    paths = build_spec(routes)["paths"]
    return {(path, method): op for path, item in paths.items() for method, op in item.items() if method in _METHODS}


def test_every_route_is_described_and_nothing_else(app_routes: list[Route[Access]]) -> None:
    assert set(router_routes(app_routes)) == set(spec_operations(app_routes))


def test_operation_ids_are_route_names_and_security_follows_the_role(app_routes: list[Route[Access]]) -> None:
    routes = router_routes(app_routes)
    roles = required_roles(app_routes)
    for where, operation in spec_operations(app_routes).items():
        assert operation["operationId"] == routes[where]
        role = roles[routes[where]]
        assert (operation["security"] == []) == (role is None), where
        assert operation.get("x-required-role") == (role.value if role else None), where
        if role is not None:
            assert "401" in operation["responses"], where  # type: ignore[operator]


def test_path_parameters_are_declared(app_routes: list[Route[Access]]) -> None:
    for (path, _), operation in spec_operations(app_routes).items():
        declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}  # type: ignore[attr-defined]
        assert declared == set(re.findall(r"{(\w+)}", path)), path


def test_references_resolve(app_routes: list[Route[Access]]) -> None:
    spec = build_spec(app_routes)
    text = str(spec)
    for name in re.findall(r"#/components/schemas/(\w+)", text):
        assert name in spec["components"]["schemas"], name


def test_the_served_document_describes_only_the_routes_served(harness: Harness) -> None:
    """This app has no key store and no aggregation store, so it serves neither /admin/keys nor GET /query (the
    InfluxDB write API's POST /query is served: it needs no store of its own)."""
    paths = harness.client.get("/openapi.json").json()["paths"]

    assert set(paths) == {
        "/healthz",
        "/readyz",
        "/metrics",
        "/metrics/{id}",
        "/stats",
        "/internal/metrics",
        "/openapi.json",
        "/write",
        "/api/v2/write",
        "/ping",
        "/query",
        "/api/v1/write",
        "/v1/metrics",
        "/",
        "/dashboard/{asset}",
    }
