"""The route table and path routing: static paths by dict lookup, parameter paths compiled once into patterns."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import KW_ONLY, dataclass
from typing import Generic, TypeVar

from telemetry_server.errors import AppError, MethodNotAllowed, NotFound, excerpt
from telemetry_server.http.event_stream import EventStream
from telemetry_server.http.operation import Operation
from telemetry_server.http.request import Request
from telemetry_server.http.responses import Response

# A handler answers with a Response, or holds the connection open with an EventStream (SSE, WebSocket).
Handler = Callable[[Request], Awaitable[Response | EventStream]]
# What a caller needs to use a route. The router only carries it and auth/policy gives it meaning, so that
# http/ depends on nothing in auth/.
RoleT = TypeVar("RoleT")

_PARAM = re.compile(r"{([a-zA-Z_][a-zA-Z0-9_]*)}")


def compile_path(path: str) -> re.Pattern[str] | None:
    """Turn `/metrics/{id}` into a pattern with named groups; None for a static path."""
    if not _PARAM.search(path):
        return None
    pattern, last = "^", 0
    for match in _PARAM.finditer(path):
        pattern += re.escape(path[last : match.start()]) + f"(?P<{match.group(1)}>[^/]+)"
        last = match.end()
    return re.compile(pattern + re.escape(path[last:]) + "$")


@dataclass(frozen=True, slots=True)
class Route(Generic[RoleT]):
    """One endpoint, declared beside its handler. The auth policy, the rate limiter and the OpenAPI document
    are derived from these declarations; the role has no default, so no route is open by omission."""

    path: str
    methods: tuple[str, ...]
    handler: Handler
    name: str  # unique: the operationId, and the label in logs and statistics
    _: KW_ONLY
    role: RoleT
    operation: Operation
    rate_limited: bool = True
    # The body of its error answers, when its protocol words them otherwise than problem+json (OTLP's Status).
    problem_body: Callable[[Request, AppError, str], tuple[bytes, bytes]] | None = None
    # A query parameter that may carry the API key, for clients that cannot send a header (InfluxDB v1's `p`).
    key_param: str | None = None
    # A query parameter that may carry a short-lived stream token instead (browsers' EventSource sends no header).
    token_param: str | None = None


class Router(Generic[RoleT]):
    """Resolves (method, path) to a route and path parameters, or raises NotFound / MethodNotAllowed.

    HEAD resolves to the GET route of the path, unless a route declares HEAD itself: the dispatcher then sends
    the GET answer's status and headers without its body."""

    def __init__(self, routes: Iterable[Route[RoleT]]) -> None:
        self.routes = list(routes)
        # path (or pattern) → method → route
        self._static: dict[str, dict[str, Route[RoleT]]] = {}
        self._dynamic: list[tuple[re.Pattern[str], dict[str, Route[RoleT]]]] = []
        by_pattern: dict[str, dict[str, Route[RoleT]]] = {}
        names: set[str] = set()
        for route in self.routes:
            if route.name in names:
                raise ValueError(f"duplicate route name {route.name}")
            names.add(route.name)
            regex = compile_path(route.path)
            if regex is None:
                methods = self._static.setdefault(route.path, {})
            elif regex.pattern in by_pattern:
                methods = by_pattern[regex.pattern]
            else:
                methods = by_pattern[regex.pattern] = {}
                self._dynamic.append((regex, methods))
            for method in route.methods:
                if method in methods:
                    raise ValueError(f"duplicate route {method} {route.path}")
                methods[method] = route
        for methods in [*self._static.values(), *by_pattern.values()]:
            if "GET" in methods:
                methods.setdefault("HEAD", methods["GET"])

    def resolve(self, method: str, path: str) -> tuple[Route[RoleT], dict[str, str]]:
        """Return (route, path parameters)."""
        params: dict[str, str] = {}
        methods = self._static.get(path)
        if methods is None:
            for regex, candidate in self._dynamic:
                match = regex.match(path)
                if match is not None:
                    methods, params = candidate, match.groupdict()
                    break
            else:
                raise NotFound(f"no resource at {excerpt(path)}")
        route = methods.get(method)
        if route is None:
            raise MethodNotAllowed(list(methods))
        return route, params
