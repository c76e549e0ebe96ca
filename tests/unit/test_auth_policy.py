"""Access as the routes declare it: what is open, what needs which role, what is never rate limited."""

from __future__ import annotations

import pytest

from telemetry_server.auth.keys import Role
from telemetry_server.auth.policy import Access, required_roles
from telemetry_server.http.request import Request
from telemetry_server.http.responses import Response
from telemetry_server.http.router import Route


async def _handler(_: Request) -> Response:
    return Response()


def test_a_route_must_declare_its_role() -> None:
    with pytest.raises(TypeError, match="role"):
        Route("/metrics", ("GET",), _handler, "list_metrics")  # type: ignore[call-arg]


def test_each_route_needs_the_role_it_declares(app_routes: list[Route[Access]]) -> None:
    roles = required_roles(app_routes)

    assert roles == {route.name: route.role for route in app_routes}
    assert roles["list_metrics"] is Role.READ
    assert roles["create_metrics"] is Role.WRITE


def test_only_probes_the_api_description_and_the_dashboard_files_are_open(app_routes: list[Route[Access]]) -> None:
    assert {name for name, role in required_roles(app_routes).items() if role is None} == {
        "healthz",
        "readyz",
        "influx_ping",
        "openapi",
        "dashboard",  # the page and its files hold no data: what it shows is asked for with the user's key
        "dashboard_asset",
    }


def test_admin_routes_need_admin_and_changes_need_write(app_routes: list[Route[Access]]) -> None:
    for route in app_routes:
        if route.path.startswith("/admin/"):
            assert route.role is Role.ADMIN, route.name
        if set(route.methods) - {"GET"}:
            assert route.role is not None, route.name
            assert route.role.allows(Role.WRITE), route.name


def test_only_probes_and_scrapes_are_never_rate_limited(app_routes: list[Route[Access]]) -> None:
    assert {route.name for route in app_routes if not route.rate_limited} == {
        "healthz",
        "readyz",
        "influx_ping",
        "internal_metrics",
    }
