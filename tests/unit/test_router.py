"""The router: static and parameter paths, 404 and 405 with the allowed methods, and what a route declares."""

from __future__ import annotations

import re

import pytest

from telemetry_server.errors import MethodNotAllowed, NotFound
from telemetry_server.http.operation import Operation
from telemetry_server.http.request import Request
from telemetry_server.http.responses import Response, empty_response
from telemetry_server.http.router import Handler, Route, Router, compile_path


async def list_metrics(request: Request) -> Response:
    return empty_response(200)


async def create_metrics(request: Request) -> Response:
    return empty_response(201)


async def get_metric(request: Request) -> Response:
    return empty_response(200)


async def get_series(request: Request) -> Response:
    return empty_response(200)


def route(path: str, methods: tuple[str, ...], handler: Handler, name: str, role: str = "reader") -> Route[str]:
    return Route(path, methods, handler, name, role=role, operation=Operation(name, {200: ("OK.", None)}))


@pytest.fixture
def router() -> Router[str]:
    return Router(
        [
            route("/metrics", ("GET",), list_metrics, "list"),
            route("/metrics", ("POST",), create_metrics, "create", "writer"),
            route("/metrics/{id}", ("GET", "DELETE"), get_metric, "one"),
            route("/series/{name}/points/{at}", ("GET",), get_series, "series"),
        ]
    )


def test_compile_path_is_none_for_a_static_path() -> None:
    assert compile_path("/metrics") is None


def test_compile_path_names_each_parameter() -> None:
    pattern = compile_path("/series/{name}/points/{at}")

    assert pattern is not None
    match = pattern.match("/series/cpu.load/points/17")
    assert match is not None
    assert match.groupdict() == {"name": "cpu.load", "at": "17"}


def test_compile_path_escapes_the_literal_parts() -> None:
    pattern = compile_path("/a.b/{x}")

    assert pattern is not None
    assert pattern.match("/a.b/1")
    assert not pattern.match("/aXb/1")


def test_static_route_by_method(router: Router[str]) -> None:
    found, params = router.resolve("POST", "/metrics")

    assert (found.handler, found.name, found.role, params) == (create_metrics, "create", "writer", {})
    assert router.resolve("GET", "/metrics")[0].handler is list_metrics


def test_parameter_route(router: Router[str]) -> None:
    found, params = router.resolve("DELETE", "/metrics/abc")

    assert (found.handler, found.name, params) == (get_metric, "one", {"id": "abc"})


def test_every_parameter_is_passed(router: Router[str]) -> None:
    assert router.resolve("GET", "/series/cpu/points/1")[1] == {"name": "cpu", "at": "1"}


def test_a_route_is_rate_limited_unless_it_says_otherwise() -> None:
    assert route("/metrics", ("GET",), list_metrics, "list").rate_limited


@pytest.mark.parametrize("path", ["/", "/nope", "/metrics/", "/metrics/a/b", "/metricsx", "/series/cpu/points/"])
def test_unknown_path_is_not_found(router: Router[str], path: str) -> None:
    with pytest.raises(NotFound):
        router.resolve("GET", path)


def test_known_path_with_another_method_lists_the_allowed_ones(router: Router[str]) -> None:
    with pytest.raises(MethodNotAllowed) as caught:
        router.resolve("PUT", "/metrics")

    assert caught.value.allowed == ["GET", "HEAD", "POST"]
    assert caught.value.headers() == [(b"allow", b"GET, HEAD, POST")]
    assert caught.value.status == 405


def test_parameter_path_with_another_method_is_405(router: Router[str]) -> None:
    with pytest.raises(MethodNotAllowed) as caught:
        router.resolve("POST", "/metrics/abc")

    assert caught.value.allowed == ["DELETE", "GET", "HEAD"]


def test_head_resolves_to_the_get_route(router: Router[str]) -> None:
    assert router.resolve("HEAD", "/metrics")[0] is router.resolve("GET", "/metrics")[0]
    assert router.resolve("HEAD", "/metrics/abc") == router.resolve("GET", "/metrics/abc")


def test_head_is_not_allowed_where_get_is_not() -> None:
    router = Router([route("/metrics", ("POST",), create_metrics, "create")])

    with pytest.raises(MethodNotAllowed) as caught:
        router.resolve("HEAD", "/metrics")

    assert caught.value.allowed == ["POST"]


def test_a_declared_head_route_wins() -> None:
    router = Router([route("/metrics", ("GET",), list_metrics, "list"), route("/metrics", ("HEAD",), get_series, "h")])

    assert router.resolve("HEAD", "/metrics")[0].name == "h"


def test_methods_are_case_sensitive(router: Router[str]) -> None:
    with pytest.raises(MethodNotAllowed):
        router.resolve("get", "/metrics")


def test_duplicate_route_is_refused() -> None:
    with pytest.raises(ValueError, match=re.escape("duplicate route GET /metrics/{id}")):
        Router([route("/metrics/{id}", ("GET",), get_metric, "a"), route("/metrics/{id}", ("GET",), get_series, "b")])


def test_duplicate_route_name_is_refused() -> None:
    """The name is the operationId and the key of the auth policy: two routes cannot share one."""
    with pytest.raises(ValueError, match="duplicate route name one"):
        Router([route("/metrics", ("GET",), list_metrics, "one"), route("/series", ("GET",), get_series, "one")])


def test_static_path_wins_over_a_parameter_path() -> None:
    router = Router(
        [route("/metrics/{id}", ("GET",), get_metric, "one"), route("/metrics/stats", ("GET",), get_series, "stats")]
    )

    assert router.resolve("GET", "/metrics/stats")[0].handler is get_series
    assert router.resolve("GET", "/metrics/other")[0].handler is get_metric


def test_a_long_unknown_path_is_repeated_cut_short(router: Router[str]) -> None:
    with pytest.raises(NotFound) as refused:
        router.resolve("GET", "/" + "x" * 10_000)
    assert len(refused.value.detail) < 100
