"""The /metrics API over real HTTP: Granian with 2 workers, a MongoDB-wire engine and Redis."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest

from telemetry_server.models.point_id import POINT_ID_LENGTH, is_point_id

PROBLEM = "application/problem+json"
BASE = datetime(2026, 11, 1, tzinfo=UTC)


def at(minutes: int) -> str:
    return (BASE + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def seed(client: httpx.Client, name: str, count: int, tags: list[str] | None = None) -> list[str]:
    batch = [{"name": name, "tags": tags or [], "value": float(i), "timestamp": at(i)} for i in range(count)]
    response = client.post("/metrics", json=batch)
    assert response.status_code == 201, response.text
    ids: list[str] = response.json()["ids"]
    return ids


def test_health_and_readiness(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready", "mongo": "up", "redis": "up"}


def test_create_read_update_delete_round_trip(client: httpx.Client, metric_name: str) -> None:
    created = client.post("/metrics", json={"name": metric_name, "tags": ["host:web-1"], "value": 0.5})
    assert created.status_code == 201
    metric = created.json()
    assert created.headers["location"] == f"/metrics/{metric['id']}"
    assert len(metric["id"]) == POINT_ID_LENGTH  # a new id, not a migrated ObjectId
    assert is_point_id(metric["id"])
    assert metric["timestamp"].endswith("Z")
    assert client.get(f"/metrics/{metric['id']}").json() == metric

    listed = client.get("/metrics", params={"name": metric_name}).json()
    assert listed["items"] == [metric]

    replacement = {"name": metric_name, "tags": ["host:web-2"], "value": 2, "timestamp": "2026-11-27T10:00:00+02:00"}
    updated = client.put(f"/metrics/{metric['id']}", json=replacement)
    assert updated.status_code == 200
    assert updated.json() == {**replacement, "id": metric["id"], "value": 2.0, "timestamp": "2026-11-27T08:00:00.000Z"}
    assert client.get("/metrics", params={"name": metric_name}).json()["items"] == [updated.json()]

    assert client.delete(f"/metrics/{metric['id']}").status_code == 204
    assert client.get(f"/metrics/{metric['id']}").status_code == 404
    assert client.delete(f"/metrics/{metric['id']}").status_code == 404
    assert client.get("/metrics", params={"name": metric_name}).json()["items"] == []


def test_listing_filters_sort_and_cursor_paging(client: httpx.Client, metric_name: str) -> None:
    seed(client, metric_name, 10, ["env:test", "host:a"])
    seed(client, metric_name, 3, ["env:test", "host:b"])

    newest = client.get("/metrics", params={"name": metric_name, "limit": 4}).json()
    assert [m["timestamp"] for m in newest["items"]] == [at(9), at(8), at(7), at(6)]

    pages, cursor = [], None
    while True:
        params = {"name": metric_name, "tag": "host:a", "limit": 3, "sort": "asc"}
        page = client.get("/metrics", params={**params, **({"cursor": cursor} if cursor else {})}).json()
        pages.append([m["value"] for m in page["items"]])
        cursor = page["next"]
        if cursor is None:
            break
    assert [v for page in pages for v in page] == [float(i) for i in range(10)]

    window = client.get("/metrics", params={"name": metric_name, "from": at(2), "to": at(5), "tag": "host:b"})
    assert [m["value"] for m in window.json()["items"]] == [2.0]

    both = client.get("/metrics", params=[("name", metric_name), ("tag", "env:test"), ("tag", "host:b")])
    assert len(both.json()["items"]) == 3

    filters = orjson.dumps({"name": metric_name, "tags": ["host:a"], "from": at(8)}).decode()
    assert [m["value"] for m in client.get("/metrics", params={"filters": filters}).json()["items"]] == [9.0, 8.0]


def test_batch_is_all_or_nothing(client: httpx.Client, metric_name: str) -> None:
    batch = [
        {"name": metric_name, "value": 1},
        {"name": metric_name, "value": "high"},
        {"name": metric_name, "value": 3, "colour": "red"},
    ]
    response = client.post("/metrics", json=batch)
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert {(e["index"], e["field"]) for e in response.json()["errors"]} == {(1, "value"), (2, "colour")}
    assert client.get("/metrics", params={"name": metric_name}).json()["items"] == []


def test_cache_serves_repeats_and_writes_invalidate(client: httpx.Client, metric_name: str) -> None:
    (first,) = seed(client, metric_name, 1)
    params = {"name": metric_name}
    assert client.get("/metrics", params=params).headers["x-cache"] == "miss"
    assert client.get("/metrics", params=params).headers["x-cache"] == "hit"
    everything = {"limit": 1000}
    client.get("/metrics", params=everything)

    client.put(f"/metrics/{first}", json={"name": metric_name, "value": 42, "timestamp": at(0)})
    response = client.get("/metrics", params=params)
    assert response.headers["x-cache"] == "hit"  # the cached page was updated in place
    assert response.json()["items"][0]["value"] == 42.0
    listed = {m["id"]: m["value"] for m in client.get("/metrics", params=everything).json()["items"]}
    assert listed.get(first, 42.0) == 42.0

    client.delete(f"/metrics/{first}")
    assert client.get("/metrics", params=params).json()["items"] == []


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("POST", "/metrics", {"content": b"{not json", "headers": {"content-type": "application/json"}}, 400),
        ("POST", "/metrics", {"content": b"name=x", "headers": {"content-type": "text/plain"}}, 415),
        (
            "POST",
            "/metrics",
            {"content": b'{"name": "x", "value": NaN}', "headers": {"content-type": "application/json"}},
            400,
        ),
        (
            "POST",
            "/metrics",
            {"content": b'{"name": "x", "value": 1e999}', "headers": {"content-type": "application/json"}},
            400,
        ),
        ("POST", "/metrics", {"json": {"name": "x", "value": True}}, 422),
        ("POST", "/metrics", {"json": {"name": "x", "value": 1, "timestamp": "yesterday"}}, 422),
        ("POST", "/metrics", {"json": 7}, 422),
        ("GET", "/metrics", {"params": {"limit": "0"}}, 422),
        ("GET", "/metrics", {"params": {"name[$ne]": "x"}}, 422),
        ("GET", "/metrics", {"params": {"cursor": "bogus"}}, 422),
        ("GET", "/metrics/not-an-id", {}, 404),
        ("GET", "/metrics/0123456789abcdef01234567", {}, 404),
        ("PUT", "/metrics/0123456789abcdef01234567", {"json": {"name": "x", "value": 1}}, 404),
        ("DELETE", "/metrics/zzz", {}, 404),
        ("GET", "/nowhere", {}, 404),
        ("PATCH", "/metrics", {}, 405),
    ],
)
def test_errors_are_problem_details(
    client: httpx.Client, method: str, path: str, kwargs: dict[str, object], status: int
) -> None:
    response = client.request(method, path, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]


def test_method_not_allowed_names_the_allowed_methods(client: httpx.Client) -> None:
    assert client.patch("/metrics").headers["allow"] == "GET, HEAD, POST"
    assert client.post("/metrics/0123456789abcdef01234567").headers["allow"] == "DELETE, GET, HEAD, PUT"


def test_head_answers_like_get_without_the_body(client: httpx.Client, metric_name: str) -> None:
    seed(client, metric_name, 3)
    params = {"name": metric_name}
    client.get("/metrics", params=params)  # cached from here on: both answers below are hits
    get = client.get("/metrics", params=params)
    head = client.head("/metrics", params=params)

    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-length"] == str(len(get.content))
    assert (head.headers["content-type"], head.headers["x-cache"]) == ("application/json", "hit")
    missing = client.head("/metrics/0123456789abcdef01234567")
    assert (missing.status_code, missing.headers["content-type"], missing.content) == (404, PROBLEM, b"")


def test_a_head_answer_leaves_the_connection_usable(base_url: str) -> None:
    """No body follows a HEAD answer on the wire, so the next answer on the same connection is read intact."""
    url = httpx.URL(base_url)
    with socket.create_connection((url.host, url.port or 80), timeout=10) as conn:
        conn.sendall(
            b"HEAD /healthz HTTP/1.1\r\nhost: t\r\n\r\nGET /healthz HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n"
        )
        received = b""
        while chunk := conn.recv(65536):
            received += chunk

    body = orjson.dumps({"status": "ok"})
    head, get = received.split(b"HTTP/1.1 ")[1:]
    assert head.startswith(b"200 ")
    assert f"content-length: {len(body)}\r\n".encode() in head.lower()
    assert head.endswith(b"\r\n\r\n")  # headers only
    assert get.startswith(b"200 ")
    assert get.endswith(b"\r\n\r\n" + body)


def test_body_over_the_limit_is_refused_before_parsing(client: httpx.Client) -> None:
    response = client.post(
        "/metrics", content=b"[" + b" " * 2_000_000 + b"]", headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == PROBLEM


def test_a_write_invalidates_only_listings_it_can_change(client: httpx.Client, metric_name: str) -> None:
    seed(client, metric_name, 1, ["region:eu"])
    eu = {"name": metric_name, "tag": "region:eu"}
    client.get("/metrics", params=eu)
    assert client.get("/metrics", params=eu).headers["x-cache"] == "hit"

    client.post("/metrics", json={"name": metric_name, "tags": ["region:us"], "value": 1})
    assert client.get("/metrics", params=eu).headers["x-cache"] == "hit"  # a region:us metric cannot appear here

    client.post("/metrics", json={"name": metric_name, "tags": ["region:eu", "host:a"], "value": 2})
    fresh = client.get("/metrics", params=eu)
    assert fresh.headers["x-cache"] == "hit"  # the new metric entered the cached page
    assert len(fresh.json()["items"]) == 2
