"""Path routing: static paths by dict lookup, parameter paths compiled once into regular expressions."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from telemetry_server.errors import MethodNotAllowed, NotFound
from telemetry_server.http.request import Request
from telemetry_server.http.responses import Response

Handler = Callable[[Request], Awaitable[Response]]

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
class Route:
    path: str
    methods: tuple[str, ...]
    handler: Handler
    name: str = ""


@dataclass(slots=True)
class _Methods:
    handlers: dict[str, tuple[Handler, str]] = field(default_factory=dict)


class Router:
    """Resolves (method, path) to a handler and path parameters, or raises NotFound / MethodNotAllowed."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = list(routes)
        self._static: dict[str, _Methods] = {}
        self._dynamic: list[tuple[re.Pattern[str], _Methods]] = []
        by_pattern: dict[str, _Methods] = {}
        for route in self.routes:
            regex = compile_path(route.path)
            if regex is None:
                methods = self._static.setdefault(route.path, _Methods())
            elif regex.pattern in by_pattern:
                methods = by_pattern[regex.pattern]
            else:
                methods = by_pattern[regex.pattern] = _Methods()
                self._dynamic.append((regex, methods))
            for method in route.methods:
                if method in methods.handlers:
                    raise ValueError(f"duplicate route {method} {route.path}")
                methods.handlers[method] = (route.handler, route.name or route.path)

    def resolve(self, method: str, path: str) -> tuple[Handler, str, dict[str, str]]:
        """Return (handler, route name, path parameters)."""
        params: dict[str, str] = {}
        methods = self._static.get(path)
        if methods is None:
            for regex, candidate in self._dynamic:
                match = regex.match(path)
                if match is not None:
                    methods, params = candidate, match.groupdict()
                    break
            else:
                raise NotFound(f"no resource at {path}")
        found = methods.handlers.get(method)
        if found is None:
            raise MethodNotAllowed(list(methods.handlers))
        return found[0], found[1], params
