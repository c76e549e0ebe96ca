"""Dependencies stopped, killed and restarted under load: only documented statuses, no acknowledged write
lost, and recovery without restarting the server."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from telemetry_server import engines
from tests.integration.conftest import ServerProcess, count_stored, wait_until

WRITE_STATUSES = {201, 503}
READ_STATUSES = {200, 503}
KILLS = 3


class Load:
    """A few threads writing (and reading, unless told not to) until stopped, at most `limit` requests each,
    paced to about `writes_per_second` in all when given."""

    def __init__(
        self,
        base_url: str,
        name: str,
        threads: int = 4,
        limit: int = 2000,
        reads: bool = True,
        writes_per_second: float | None = None,
    ) -> None:
        self.acknowledged: list[str] = []
        self.statuses: Counter[tuple[str, int]] = Counter()
        self._reads = reads
        self._interval = threads / writes_per_second if writes_per_second else 0.0
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

    def acknowledged_so_far(self) -> list[str]:
        with self._lock:
            return list(self.acknowledged)

    def _run(self, base_url: str, name: str, limit: int) -> None:
        with httpx.Client(base_url=base_url, timeout=30) as client:
            due = time.monotonic()
            for i in range(limit):
                due = max(due + self._interval, time.monotonic())  # behind after an outage: no burst
                if self._stop.wait(max(0.0, due - time.monotonic())):
                    return
                try:
                    written = client.post("/metrics", json={"name": name, "value": i})
                    read = client.get("/metrics", params={"name": name, "limit": 5}) if self._reads else None
                except httpx.HTTPError:
                    continue  # a dropped connection acknowledges nothing
                with self._lock:
                    self.statuses["POST", written.status_code] += 1
                    if read is not None:
                        self.statuses["GET", read.status_code] += 1
                    if written.status_code == 201:
                        self.acknowledged.append(written.json()["id"])


@pytest.fixture
def start_private_mongo(work_dir: Path) -> Callable[[], engines.Engine]:
    """Starts a MongoDB-wire engine of this test's own, again on the same port and data when called again."""
    port = engines.free_port()
    data = work_dir / f"mongo-{port}"
    data.mkdir()

    def start() -> engines.Engine:
        return engines.start("mongo", engines.mongo_command(port, data, os.environ), port, data / "log")

    return start


def ready(server: ServerProcess, component: str) -> Callable[[], bool]:
    return lambda: httpx.get(f"{server.base_url}/readyz").json()[component] == "up"


def missing(mongo_uri: str, ids: list[str]) -> int:
    """How many of these acknowledged ids the database does not hold."""
    return len(ids) - count_stored(mongo_uri, "telemetry_server_test", ids)


def test_no_acknowledged_write_is_lost_when_mongo_is_killed_under_load(
    server_factory: Callable[..., ServerProcess],
    start_private_mongo: Callable[[], engines.Engine],
    metric_name: str,
) -> None:
    """kill -9 (no shutdown, no flush) of the MongoDB-wire engine KILLS times under 100 writes/s, each time
    restarted on the same data: every write answered 201 before a kill is there after the restart."""
    mongo = start_private_mongo()
    server = server_factory(MONGO_URI=mongo.uri, MONGO_TIMEOUT_MS="500")
    counts: list[tuple[int, int]] = []  # per kill: writes acknowledged since the previous one, and lost of them
    try:
        with Load(server.base_url, metric_name, reads=False, writes_per_second=100) as load:
            checked = 0
            for _ in range(KILLS):
                time.sleep(1.5)  # and at least 50 writes acknowledged by this engine, however busy the machine
                assert wait_until(lambda n=checked + 50: len(load.acknowledged_so_far()) >= n, 20), load.statuses
                os.kill(mongo.pid, signal.SIGKILL)
                engines.stop_pid(mongo.pid)  # reaps it
                acknowledged = load.acknowledged_so_far()
                mongo = start_private_mongo()
                counts.append((len(acknowledged) - checked, missing(mongo.uri, acknowledged[checked:])))
                checked = len(acknowledged)
                assert wait_until(ready(server, "mongo"), 30), "the server did not see MongoDB come back"
        lost_after = missing(mongo.uri, load.acknowledged)
    finally:
        engines.stop_pid(mongo.pid)

    print(f"kill -9 of MongoDB x{KILLS}: (acknowledged, lost) per kill {counts}; lost in all {lost_after}")
    assert [lost for _, lost in counts] == [0] * KILLS, f"(acknowledged, lost) per kill: {counts}"
    assert lost_after == 0
    assert {status for (_, status) in load.statuses} <= WRITE_STATUSES, load.statuses


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

    try:
        with Load(server.base_url, metric_name) as load:
            time.sleep(1)
            engines.stop_pid(redis.pid)
            time.sleep(1.5)
            folder = work_dir / f"redis-{redis_port}"  # where redis_factory started it: same port, same folder
            redis = engines.start("redis", engines.redis_command(redis_port, folder), redis_port, folder / "log")
            assert wait_until(ready(server, "redis"), 20), "the server did not see Redis come back"
            time.sleep(0.5)
            engines.stop_pid(mongo.pid)
            time.sleep(1.5)
            mongo = start_private_mongo()
            assert wait_until(ready(server, "mongo"), 30), "the server did not see MongoDB come back"
            time.sleep(1)
        after = httpx.post(f"{server.base_url}/metrics", json={"name": metric_name, "value": -1})
        assert after.status_code == 201, after.text
        lost = missing(mongo.uri, [*load.acknowledged, after.json()["id"]])
    finally:
        engines.stop_pid(mongo.pid)
        engines.stop_pid(redis.pid)

    assert lost == 0
    assert {status for (method, status) in load.statuses if method == "POST"} <= WRITE_STATUSES, load.statuses
    assert {status for (method, status) in load.statuses if method == "GET"} <= READ_STATUSES, load.statuses
    assert load.statuses["POST", 503] > 0, "MongoDB was stopped, yet no write was refused"
