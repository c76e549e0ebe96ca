"""`telemetry-server keys` beside a server that runs its own embedded engines (scripts/serve.sh): with no
MONGO_URI, the command finds the running server's MongoDB-wire engine."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from telemetry_server import engines
from tests.integration.conftest import ROOT, ServerProcess

APP_ENV = "localkeys"


@pytest.fixture
def local_env(work_dir: Path) -> dict[str, str]:
    """The environment of scripts/serve.sh: no URIs, so embedded engines; auth on, to use the key made."""
    env = {k: v for k, v in os.environ.items() if k not in ("MONGO_URI", "REDIS_URI")}
    data_dir = work_dir / "local-keys-data"
    return {**env, "ENVIRONMENT": "test", "APP_ENV": APP_ENV, "DATA_DIR": str(data_dir), "LOG_LEVEL": "info"}


@pytest.fixture
def local_server(local_env: dict[str, str], work_dir: Path) -> Iterator[ServerProcess]:
    server = ServerProcess({**local_env, "AUTH_ENABLED": "true"}, 1, work_dir / "local-keys-server.log")
    yield server
    server.stop()


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "telemetry_server", "keys", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_keys_without_mongo_uri_use_the_running_servers_engine(
    local_server: ServerProcess, local_env: dict[str, str]
) -> None:
    running = engines.running_engines(Path(local_env["DATA_DIR"]) / APP_ENV)
    assert set(running) == {"MONGO_URI", "REDIS_URI"}

    created = cli(local_env, "create", "--role", "admin", "--name", "first")
    assert created.returncode == 0, created.stderr
    assert running["MONGO_URI"] in created.stderr  # it says which engine it used
    key = created.stdout.strip().splitlines()[-1]
    listed = httpx.get(f"{local_server.base_url}/admin/keys", headers={"Authorization": f"Bearer {key}"})
    assert listed.status_code == 200
    assert [item["name"] for item in listed.json()["items"]] == ["first"]
    assert "first" in cli(local_env, "list").stdout

    local_server.stop()  # the server takes its engines and their file away with it
    assert not (Path(local_env["DATA_DIR"]) / APP_ENV / engines.RUNNING_FILE).exists()


def test_keys_without_mongo_uri_or_server_say_what_they_need(local_env: dict[str, str]) -> None:
    done = cli(local_env, "list")
    assert done.returncode == 2
    assert "MONGO_URI" in done.stderr
    assert "scripts/serve.sh" in done.stderr
