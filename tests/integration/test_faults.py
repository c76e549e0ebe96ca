"""Dependencies stopped and restarted under load: only documented statuses, no acknowledged write lost,
and recovery without restarting the server."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from bson import ObjectId
from pymongo import MongoClient

from telemetry_server import engines
from tests.integration.conftest import ServerProcess

WRITE_STATUSES = {201, 503}
READ_STATUSES = {200, 503}


class Load:
    """A few threads writing and reading until stopped (at most `limit` requests each)."""

    def __init__(self, base_url: str, name: str, threads: int = 4, limit: int = 2000) -> None:
        self.acknowledged: list[str] = []
        self.statuses: Counter[tuple[str, int]] = Counter()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(base_url, name, limit), daemon=True) for _ in range(threads)
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def _run(self, base_url: str, name: str, limit: int) -> None:
        with httpx.Client(base_url=base_url, timeout=30) as client:
            for i in range(limit):
                if self._stop.is_set():
                    return
                try:
                    written = client.post("/metrics", json={"name": name, "value": i})
                    read = client.get("/metrics", params={"name": name, "limit": 5})
                except httpx.HTTPError:
                    continue  # a dropped connection acknowledges nothing
                with self._lock:
                    self.statuses["POST", written.status_code] += 1
                    self.statuses["GET", read.status_code] += 1
                    if written.status_code == 201:
                        self.acknowledged.append(written.json()["id"])


def wait_until(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def start_private_mongo(work_dir: Path) -> Callable[[], engines.Engine]:
    """Starts a MongoDB-wire engine of this test's own, again on the same port and data when called again."""
    port = engines.free_port()
    data = work_dir / f"mongo-{port}"
    data.mkdir()

    def start() -> engines.Engine:
        return engines.start("mongo", engines.mongo_command(port, data, os.environ), port, data / "log")

    return start


def test_redis_and_mongo_restarts_under_load(
    server_factory: Callable[..., ServerProcess],
    redis_factory: Callable[[], engines.Engine],
    start_private_mongo: Callable[[], engines.Engine],
    work_dir: Path,
    metric_name: str,
) -> None:
    mongo = start_private_mongo()
    redis = redis_factory()
    redis_port = int(redis.uri.rsplit(":", 1)[1])
    server = server_factory(MONGO_URI=mongo.uri, REDIS_URI=redis.uri, MONGO_TIMEOUT_MS="500")

    def ready(component: str) -> Callable[[], bool]:
        return lambda: httpx.get(f"{server.base_url}/readyz").json()[component] == "up"

    try:
        with Load(server.base_url, metric_name) as load:
            time.sleep(1)
            engines.stop_pid(redis.pid)
            time.sleep(1.5)
            folder = work_dir / f"redis-{redis_port}"  # where redis_factory started it: same port, same folder
            redis = engines.start("redis", engines.redis_command(redis_port, folder), redis_port, folder / "log")
            assert wait_until(ready("redis"), 20), "the server did not see Redis come back"
            time.sleep(0.5)
            engines.stop_pid(mongo.pid)
            time.sleep(1.5)
            mongo = start_private_mongo()
            assert wait_until(ready("mongo"), 30), "the server did not see MongoDB come back"
            time.sleep(1)
        after = httpx.post(f"{server.base_url}/metrics", json={"name": metric_name, "value": -1})
        assert after.status_code == 201, after.text
        acknowledged = [*load.acknowledged, after.json()["id"]]
        with MongoClient(mongo.uri, tz_aware=True) as client:
            stored = client["telemetry_server_test"]["metrics"].count_documents(
                {"_id": {"$in": [ObjectId(i) for i in acknowledged]}}
            )
    finally:
        engines.stop_pid(mongo.pid)
        engines.stop_pid(redis.pid)

    assert stored == len(acknowledged)
    assert {status for (method, status) in load.statuses if method == "POST"} <= WRITE_STATUSES, load.statuses
    assert {status for (method, status) in load.statuses if method == "GET"} <= READ_STATUSES, load.statuses
    assert load.statuses["POST", 503] > 0, "MongoDB was stopped, yet no write was refused"
