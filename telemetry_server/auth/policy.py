"""Which role each route needs, by route name: None means the route is open to anyone."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from telemetry_server.auth.keys import Role
from telemetry_server.http.router import Route

# Routes not named here need `read` when they only read (GET) and `write` otherwise, except under /admin,
# which needs `admin`: a route added without an entry is never left open.
ROUTE_ROLES: Mapping[str, Role | None] = {
    "healthz": None,
    "readyz": None,
    "openapi": None,
    "list_metrics": Role.READ,
    "get_metric": Role.READ,
    "create_metrics": Role.WRITE,
    "replace_metric": Role.WRITE,
    "delete_metric": Role.WRITE,
    "query_prompt": Role.READ,
    "aggregate_metrics": Role.READ,
    "stats": Role.READ,
    "internal_metrics": Role.READ,  # Prometheus sends the key with `authorization: {credentials: ...}`
    "create_key": Role.ADMIN,
    "list_keys": Role.ADMIN,
    "revoke_key": Role.ADMIN,
}
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def required_roles(routes: Iterable[Route]) -> dict[str, Role | None]:
    """The role each route (by the name the router resolves it to) needs."""
    return {
        route.name or route.path: required_role(route.name or route.path, route.path, route.methods) for route in routes
    }


def required_role(name: str, path: str, methods: Iterable[str]) -> Role | None:
    if name in ROUTE_ROLES:
        return ROUTE_ROLES[name]
    if path == "/admin" or path.startswith("/admin/"):
        return Role.ADMIN
    return Role.READ if _READ_METHODS.issuperset(methods) else Role.WRITE
