"""The router: static and parameter paths, 404 and 405 with the allowed methods."""

from __future__ import annotations

import re

import pytest

from telemetry_server.errors import MethodNotAllowed, NotFound
from telemetry_server.http.request import Request
from telemetry_server.http.responses import Response, empty_response
from telemetry_server.http.router import Route, Router, compile_path


async def list_metrics(request: Request) -> Response:
    return empty_response(200)


async def create_metrics(request: Request) -> Response:
    return empty_response(201)


async def get_metric(request: Request) -> Response:
    return empty_response(200)


async def get_series(request: Request) -> Response:
    return empty_response(200)


@pytest.fixture
def router() -> Router:
    return Router(
        [
            Route("/metrics", ("GET",), list_metrics, "list"),
            Route("/metrics", ("POST",), create_metrics, "create"),
            Route("/metrics/{id}", ("GET", "DELETE"), get_metric, "one"),
            Route("/series/{name}/points/{at}", ("GET",), get_series),
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


def test_static_route_by_method(router: Router) -> None:
    assert router.resolve("GET", "/metrics") == (list_metrics, "list", {})
    assert router.resolve("POST", "/metrics") == (create_metrics, "create", {})


def test_parameter_route(router: Router) -> None:
    assert router.resolve("DELETE", "/metrics/abc") == (get_metric, "one", {"id": "abc"})


def test_unnamed_route_is_named_by_its_path(router: Router) -> None:
    handler, name, params = router.resolve("GET", "/series/cpu/points/1")

    assert (handler, name, params) == (get_series, "/series/{name}/points/{at}", {"name": "cpu", "at": "1"})


@pytest.mark.parametrize("path", ["/", "/nope", "/metrics/", "/metrics/a/b", "/metricsx", "/series/cpu/points/"])
def test_unknown_path_is_not_found(router: Router, path: str) -> None:
    with pytest.raises(NotFound):
        router.resolve("GET", path)


def test_known_path_with_another_method_lists_the_allowed_ones(router: Router) -> None:
    with pytest.raises(MethodNotAllowed) as caught:
        router.resolve("PUT", "/metrics")

    assert caught.value.allowed == ["GET", "POST"]
    assert caught.value.headers() == [(b"allow", b"GET, POST")]
    assert caught.value.status == 405


def test_parameter_path_with_another_method_is_405(router: Router) -> None:
    with pytest.raises(MethodNotAllowed) as caught:
        router.resolve("POST", "/metrics/abc")

    assert caught.value.allowed == ["DELETE", "GET"]


def test_methods_are_case_sensitive(router: Router) -> None:
    with pytest.raises(MethodNotAllowed):
        router.resolve("get", "/metrics")


def test_duplicate_route_is_refused() -> None:
    with pytest.raises(ValueError, match=re.escape("duplicate route GET /metrics/{id}")):
        Router([Route("/metrics/{id}", ("GET",), get_metric), Route("/metrics/{id}", ("GET",), get_series)])


def test_static_path_wins_over_a_parameter_path() -> None:
    router = Router([Route("/metrics/{id}", ("GET",), get_metric), Route("/metrics/stats", ("GET",), get_series)])

    assert router.resolve("GET", "/metrics/stats")[0] is get_series
    assert router.resolve("GET", "/metrics/other")[0] is get_metric
