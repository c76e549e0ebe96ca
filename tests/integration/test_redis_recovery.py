"""A long Redis outage under writes, and the recovery without a restart of the server: Redis is stopped, more
distinct-tag metrics are written than CACHE_BACKLOG_MAX lets a worker hold, Redis is started again with its
data (an append-only file, so the stale entries come back with it), and listings must be fresh and cached."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx

from telemetry_server import engines
from tests.integration.conftest import ServerProcess

BACKLOG_MAX = 200
BATCHES, BATCH_SIZE = 4, 150  # each metric its own tag: 2 keys per metric, so one batch overflows the bound
RECOVERY_SECONDS = 30  # generous: recovery is asserted by what the server answers, never by how fast


def start_persistent_redis(port: int, folder: Path) -> engines.Engine:
    """Redis that keeps its keys across a restart, as a managed Redis with persistence would."""
    command = [*engines.redis_command(port, folder), "--appendonly", "yes", "--appendfsync", "always"]
    return engines.start("redis", command, port, folder / "log")


def test_the_cache_recovers_from_a_long_outage_without_a_restart(
    server_factory: Callable[..., ServerProcess], work_dir: Path, metric_name: str
) -> None:
    port = engines.free_port()
    folder = work_dir / f"redis-aof-{port}"
    folder.mkdir()
    redis = start_persistent_redis(port, folder)
    server = server_factory(REDIS_URI=redis.uri, CACHE_BACKLOG_MAX=str(BACKLOG_MAX))
    listing = {"name": metric_name, "limit": 1000}
    try:
        with httpx.Client(base_url=server.base_url, timeout=30) as client:
            assert client.post("/metrics", json={"name": metric_name, "value": 0}).status_code == 201
            assert len(client.get("/metrics", params=listing).json()["items"]) == 1  # cached in Redis
            time.sleep(0.5)  # the append-only file is written each second at the latest

            engines.stop_pid(redis.pid)
            for batch in range(BATCHES):
                metrics = [{"name": metric_name, "tags": [f"host:h{batch}-{i}"], "value": i} for i in range(BATCH_SIZE)]
                # A connection of its own each time, so that the writes spread over the workers.
                assert httpx.post(f"{server.base_url}/metrics", json=metrics, timeout=30).status_code == 201
            written = 1 + BATCHES * BATCH_SIZE
            assert client.get("/readyz").json()["redis"] == "down"
            assert len(client.get("/metrics", params=listing).json()["items"]) == written

            redis = start_persistent_redis(port, folder)

            def fresh_and_cached() -> bool:
                answers = [httpx.get(f"{server.base_url}/metrics", params=listing, timeout=30) for _ in range(6)]
                counts = {len(answer.json()["items"]) for answer in answers}
                return counts == {written} and answers[-1].headers["x-cache"] == "hit"

            deadline = time.monotonic() + RECOVERY_SECONDS
            while not fresh_and_cached():
                assert time.monotonic() < deadline, "the cache did not recover: stale or never cached again"
                time.sleep(0.2)
            # Once recovered, it stays so: every worker serves the fresh listing, from the cache.
            assert fresh_and_cached()
            log = server.log_path.read_text()
    finally:
        engines.stop_pid(redis.pid)

    assert "dropped the whole Redis cache" in log, "the bound was never passed: the test proves nothing"
    # One line per worker when Redis goes (not one per second), and one when it answers again.
    assert 1 <= log.count("serving from MongoDB, uncached") <= 2, log[-3000:]
    assert log.count("Redis answers again") >= 1
