"""API keys over real HTTP on a 2-worker server with AUTH_ENABLED: 401/403, schemes, revocation, the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from telemetry_server.auth.keys import generate_key
from tests.integration.conftest import ROOT, ServerProcess

BOOTSTRAP = generate_key()[0]
APP_ENV = "authtest"


@pytest.fixture(scope="module")
def server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory(AUTH_ENABLED="true", BOOTSTRAP_ADMIN_KEY=BOOTSTRAP, APP_ENV=APP_ENV)


@pytest.fixture
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        yield client


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def create_key(http: httpx.Client, role: str) -> tuple[str, str]:
    created = http.post("/admin/keys", json={"role": role, "name": f"test {role}"}, headers=bearer(BOOTSTRAP))
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["key"].startswith("tsk_")
    return body["id"], body["key"]


def without_request_id(response: httpx.Response) -> dict[str, object]:
    body: dict[str, object] = response.json()
    body.pop("request_id")
    return body


def test_open_routes_need_no_key(http: httpx.Client) -> None:
    assert http.get("/healthz").status_code == 200
    assert http.get("/readyz").status_code == 200
    assert http.get("/openapi.json").json()["openapi"] == "3.1.0"


def test_every_unusable_key_gets_the_same_401(http: httpx.Client) -> None:
    key_id, key = create_key(http, "read")
    assert http.delete(f"/admin/keys/{key_id}", headers=bearer(BOOTSTRAP)).status_code == 200
    unknown = generate_key()[0]
    attempts = [
        {},
        {"authorization": "Bearer"},
        {"authorization": "Bearer not-a-key"},
        {"authorization": "Basic dXNlcjpwYXNz"},
        bearer(unknown),
        bearer(key[:-1] + ("A" if key[-1] != "A" else "B")),  # a real id, the wrong secret
        bearer(key),  # revoked
    ]
    time.sleep(1.0)  # past every worker's key cache
    answers = [http.get("/metrics", headers=headers) for headers in attempts]
    assert {r.status_code for r in answers} == {401}
    assert {r.headers["www-authenticate"] for r in answers} == {'Bearer realm="telemetry-server"'}
    assert {r.headers["content-type"] for r in answers} == {"application/problem+json"}
    first = without_request_id(answers[0])
    assert all(without_request_id(r) == first for r in answers)


def test_two_authorization_headers_are_400(http: httpx.Client) -> None:
    _, reader = create_key(http, "read")
    headers = [("authorization", f"Bearer {reader}"), ("authorization", f"Bearer {BOOTSTRAP}")]
    answer = http.get("/metrics", headers=headers)
    assert answer.status_code == 400
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["detail"] == "send one Authorization header, not 2"


def test_roles_and_both_schemes(http: httpx.Client, metric_name: str) -> None:
    _, reader = create_key(http, "read")
    _, writer = create_key(http, "write")
    metric = {"name": metric_name, "value": 1}
    assert http.get("/metrics", headers={"authorization": f"Token {reader}"}).status_code == 200
    denied = http.post("/metrics", json=metric, headers=bearer(reader))
    assert denied.status_code == 403
    assert denied.json()["type"] == "/problems/forbidden"
    created = http.post("/metrics", json=metric, headers={"authorization": f"Token {writer}"})
    assert created.status_code == 201
    assert http.delete(f"/metrics/{created.json()['id']}", headers=bearer(writer)).status_code == 204
    assert http.get("/admin/keys", headers=bearer(writer)).status_code == 403
    listed = http.get("/admin/keys", headers=bearer(BOOTSTRAP)).json()["items"]
    assert all("key" not in item for item in listed)


def test_revocation_reaches_every_worker_within_a_second(http: httpx.Client) -> None:
    key_id, key = create_key(http, "read")
    # Many requests over fresh connections, so both workers have the key cached before it is revoked.
    for _ in range(20):
        assert httpx.get(f"{http.base_url}/metrics", headers=bearer(key), params={"limit": 1}).status_code == 200
    assert http.delete(f"/admin/keys/{key_id}", headers=bearer(BOOTSTRAP)).json()["revoked_at"] is not None
    time.sleep(1.0)
    statuses = {httpx.get(f"{http.base_url}/metrics", headers=bearer(key)).status_code for _ in range(20)}
    assert statuses == {401}


def test_keys_cli_round_trip(server: ServerProcess, http: httpx.Client, mongo_uri: str) -> None:
    env = {**os.environ, "ENVIRONMENT": "test", "APP_ENV": APP_ENV, "MONGO_URI": mongo_uri, "LOG_LEVEL": "warning"}

    def cli(*args: str) -> str:
        command = [sys.executable, "-m", "telemetry_server", "keys", *args]
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True)
        return done.stdout

    out = cli("create", "--role", "write", "--name", "cli test")
    key = out.strip().splitlines()[-1]
    key_id = key.split("_")[1]
    assert http.post("/metrics", json={"name": "test.cli", "value": 1}, headers=bearer(key)).status_code == 201
    assert any(line.startswith(key_id) and "active" in line for line in cli("list").splitlines())
    assert "revoked" in cli("revoke", key_id)
    assert any(line.startswith(key_id) and "revoked" in line for line in cli("list").splitlines())
    time.sleep(1.0)
    assert http.get("/metrics", headers=bearer(key)).status_code == 401
    assert key not in cli("list")


def test_hardened_bodies_are_422(http: httpx.Client) -> None:
    _, writer = create_key(http, "write")
    for body in (
        {"name": {"$ne": ""}, "value": 1},
        {"$where": "1", "value": 1},
        [{"a.b": 1}],
        [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
    ):
        answer = http.post("/metrics", json=body, headers=bearer(writer))
        assert answer.status_code == 422, answer.text
