"""Real servers over real sockets: a MongoDB-wire engine, Redis, and telemetry-server under Granian.

scripts/test.sh starts the services and a test server and passes MONGO_URI, REDIS_URI and
TEST_BASE_URL; run alone, these fixtures start whatever is missing and stop it afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from telemetry_server import engines
from telemetry_server.models.point_id import decode_point_id
from telemetry_server.storage.bucket_columns import decode_columns

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_SECONDS = 60.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.path):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("integration")


@pytest.fixture(scope="session")
def redis_factory(work_dir: Path) -> Iterator[Callable[[], engines.Engine]]:
    """Start private Redis servers (for tests that stop one); all are stopped at the end."""
    started: list[engines.Engine] = []

    def start() -> engines.Engine:
        port = engines.free_port()
        folder = work_dir / f"redis-{port}"
        folder.mkdir()
        started.append(engines.start("redis", engines.redis_command(port, folder), port, folder / "log"))
        return started[-1]

    yield start
    for engine in started:
        engines.stop_pid(engine.pid)


@pytest.fixture(scope="session")
def mongo_uri(work_dir: Path) -> Iterator[str]:
    if os.environ.get("MONGO_URI"):
        yield os.environ["MONGO_URI"]
        return
    port = engines.free_port()
    folder = work_dir / "mongo"
    folder.mkdir()
    engine = engines.start("mongo", engines.mongo_command(port, folder, os.environ), port, work_dir / "mongo.log")
    yield engine.uri
    engines.stop_pid(engine.pid)


@pytest.fixture(scope="session")
def redis_uri(redis_factory: Callable[[], engines.Engine]) -> str:
    return os.environ.get("REDIS_URI") or redis_factory().uri


class ServerProcess:
    """A telemetry-server started with `telemetry-server serve`, stopped with SIGTERM."""

    def __init__(
        self, env: dict[str, str], workers: int, log_path: Path, ready_path: str = "/readyz", port: int | None = None
    ) -> None:
        self.port = port or engines.free_port()  # a port of its own, or a stopped server's (a restart)
        self.base_url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "telemetry_server", "serve", "--workers", str(workers)]
        command += ["--port", str(self.port)]
        self.log_path = log_path
        with log_path.open("ab") as out:
            self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        self._wait_until_ready(ready_path)

    def _wait_until_ready(self, ready_path: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.base_url}{ready_path}", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server not ready in {START_TIMEOUT_SECONDS}s: {self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="session")
def server_factory(work_dir: Path, mongo_uri: str, redis_uri: str) -> Iterator[Callable[..., ServerProcess]]:
    """Start servers with extra settings (e.g. their own Redis); all are stopped at the end."""
    servers: list[ServerProcess] = []

    def start(workers: int = 2, ready_path: str = "/readyz", **settings: str) -> ServerProcess:
        env = {**os.environ, "ENVIRONMENT": "test", "APP_ENV": "test", "LOG_LEVEL": "warning"}
        env.update({"MONGO_URI": mongo_uri, "REDIS_URI": redis_uri, **settings})
        servers.append(ServerProcess(env, workers, work_dir / f"server-{len(servers)}.log", ready_path))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def base_url(server_factory: Callable[..., ServerProcess]) -> str:
    return os.environ.get("TEST_BASE_URL") or server_factory().base_url


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=30) as http:
        yield http


@pytest.fixture
def metric_name() -> str:
    """A name no other test uses, so tests sharing one database do not see each other's metrics."""
    return f"test.{uuid.uuid4().hex[:12]}"


def wait_until(check: Callable[[], bool], seconds: float = 30) -> bool:
    """Whether `check` came true within `seconds` (polled every 0.1 s)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def count_stored(mongo_uri: str, database: str, ids: Iterable[str]) -> int:
    """How many of these ids (as POST answered them) name a point the database holds, read from the buckets
    directly rather than through the server under test."""
    wanted: dict[int, set[tuple[int, int]]] = {}
    for id_ in ids:
        slot = decode_point_id(id_)
        assert slot is not None, f"{id_} is not an id a write is answered with"
        wanted.setdefault(slot.series, set()).add((slot.millis, slot.seq))
    found = 0
    with MongoClient(mongo_uri, tz_aware=True) as client:
        buckets = client[database]["buckets"]
        for series, slots in wanted.items():
            doc: dict[str, Any]
            for doc in buckets.find({"series": series}, {"ts": 1, "v": 1, "seq": 1}):
                columns = decode_columns(doc)
                held = slots.intersection(zip(columns.millis, columns.seqs, strict=True))
                found += len(held)
                slots -= held
    return found
