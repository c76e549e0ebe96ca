"""What clients see when Redis or MongoDB is away: reads go on without Redis; no MongoDB means a prompt 503."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from telemetry_server import engines
from tests.integration.conftest import ServerProcess


def test_reads_and_writes_survive_a_stopped_redis(
    server_factory: Callable[..., ServerProcess],
    redis_factory: Callable[[], engines.Engine],
    metric_name: str,
) -> None:
    redis = redis_factory()
    server = server_factory(REDIS_URI=redis.uri)
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        first = client.post("/metrics", json={"name": metric_name, "value": 1}).json()
        assert client.get("/metrics", params={"name": metric_name}).status_code == 200

        engines.stop_pid(redis.pid)
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["redis"] == "down"

        for _ in range(5):  # every worker notices, none fails a request
            listed = client.get("/metrics", params={"name": metric_name})
            assert listed.status_code == 200
            assert [m["id"] for m in listed.json()["items"]] == [first["id"]]
        second = client.post("/metrics", json={"name": metric_name, "value": 2})
        assert second.status_code == 201
        assert client.get(f"/metrics/{second.json()['id']}").status_code == 200
        assert len(client.get("/metrics", params={"name": metric_name}).json()["items"]) == 2


def test_unreachable_mongo_answers_503_promptly(server_factory: Callable[..., ServerProcess]) -> None:
    dead = f"mongodb://127.0.0.1:{engines.free_port()}"
    server = server_factory(MONGO_URI=dead, MONGO_TIMEOUT_MS="300", ready_path="/healthz")
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["mongo"] == "down"

        started = time.monotonic()
        response = client.post("/metrics", json={"name": "cpu.load", "value": 1})
        elapsed = time.monotonic() - started
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert response.headers["content-type"] == "application/problem+json"
        assert elapsed < 10  # bounded by the configured timeout, not hung: a sanity bound, not a speed target
        assert client.get("/metrics").status_code == 503
