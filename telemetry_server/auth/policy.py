"""Which role each route needs, as the route itself declares it (`Route.role`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, TypeAlias

from telemetry_server.auth.keys import Role
from telemetry_server.http.router import Route

# The role a route needs; OPEN (None): anyone, with or without a key.
Access: TypeAlias = Role | None
OPEN: Final = None


def required_roles(routes: Iterable[Route[Access]]) -> dict[str, Access]:
    """The role each route needs, by the name the router resolves it to."""
    return {route.name: route.role for route in routes}
