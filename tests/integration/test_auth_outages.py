"""Auth on, under faults and abuse, over real HTTP on a 2-worker server: cached listings are served while
MongoDB is down, and made-up keys from one address meet 429 instead of costing a lookup each."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import httpx

from telemetry_server import engines
from telemetry_server.auth.keys import generate_key
from tests.integration.conftest import ServerProcess

BOOTSTRAP = generate_key()[0]


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def create_key(base_url: str, role: str) -> str:
    created = httpx.post(f"{base_url}/admin/keys", json={"role": role}, headers=bearer(BOOTSTRAP), timeout=30)
    assert created.status_code == 201, created.text
    key: str = created.json()["key"]
    return key


def test_cached_listings_are_served_with_auth_on_while_mongo_is_down(
    server_factory: Callable[..., ServerProcess], work_dir: Path, metric_name: str
) -> None:
    port = engines.free_port()
    data = work_dir / f"mongo-auth-{port}"
    data.mkdir()
    mongo = engines.start("mongo", engines.mongo_command(port, data, os.environ), port, data / "log")
    try:
        server = server_factory(
            MONGO_URI=mongo.uri,
            MONGO_TIMEOUT_MS="500",
            AUTH_ENABLED="true",
            BOOTSTRAP_ADMIN_KEY=BOOTSTRAP,
            APP_ENV="authoutage",
        )
        url = f"{server.base_url}/metrics"
        reader = create_key(server.base_url, "read")
        assert httpx.post(url, json={"name": metric_name, "value": 1}, headers=bearer(BOOTSTRAP)).status_code == 201
        listing = {"name": metric_name}
        # Fresh connections, so that both workers have seen the key and the listing is cached in Redis.
        for _ in range(20):
            assert httpx.get(url, params=listing, headers=bearer(reader)).status_code == 200
        never_seen = create_key(server.base_url, "read")

        engines.stop_pid(mongo.pid)
        answers = [httpx.get(url, params=listing, headers=bearer(reader), timeout=30) for _ in range(10)]
        assert {a.status_code for a in answers} == {200}, [a.text for a in answers]
        assert {a.headers["x-cache"] for a in answers} == {"hit"}
        assert [len(a.json()["items"]) for a in answers] == [1] * 10
        # A key no worker has seen cannot be checked: the server's fault, not the client's.
        unchecked = httpx.get(url, params=listing, headers=bearer(never_seen), timeout=30)
        assert unchecked.status_code == 503
        assert unchecked.headers["retry-after"] == "1"
    finally:
        engines.stop_pid(mongo.pid)


def test_made_up_keys_meet_429_while_a_real_key_carries_on(server_factory: Callable[..., ServerProcess]) -> None:
    server = server_factory(
        AUTH_ENABLED="true",
        BOOTSTRAP_ADMIN_KEY=BOOTSTRAP,
        APP_ENV="authflood",
        AUTH_FAILURE_RATE_PER_SECOND="1",
        AUTH_FAILURE_BURST="20",
    )
    reader = create_key(server.base_url, "read")
    for _ in range(20):  # fresh connections: both workers get to know the key
        assert httpx.get(f"{server.base_url}/metrics", params={"limit": 1}, headers=bearer(reader)).status_code == 200
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        statuses = [client.get("/metrics", headers=bearer(generate_key()[0])).status_code for _ in range(200)]
        # Each of the 2 workers allows the burst (and a token a second) before it refuses.
        assert set(statuses) == {401, 429}
        assert statuses.count(401) <= 2 * 20 + 10, statuses
        limited = client.get("/metrics", headers=bearer(generate_key()[0]))
        assert limited.status_code == 429
        assert limited.headers["content-type"] == "application/problem+json"
        assert int(limited.headers["retry-after"]) >= 1
        # A key the worker knows is never refused for what its address did; a new id would wait for the budget.
        assert client.get("/metrics", params={"limit": 1}, headers=bearer(reader)).status_code == 200
