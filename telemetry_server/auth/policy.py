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
    "query": Role.READ,  # a POST, but it only reads
    "create_key": Role.ADMIN,
    "list_keys": Role.ADMIN,
    "revoke_key": Role.ADMIN,
}
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def required_roles(routes: Iterable[Route]) -> dict[str, Role | None]:
    """The role each route (by the name the router resolves it to) needs."""
    roles: dict[str, Role | None] = {}
    for route in routes:
        name = route.name or route.path
        if name in ROUTE_ROLES:
            roles[name] = ROUTE_ROLES[name]
        elif route.path == "/admin" or route.path.startswith("/admin/"):
            roles[name] = Role.ADMIN
        else:
            roles[name] = Role.READ if _READ_METHODS.issuperset(route.methods) else Role.WRITE
    return roles
