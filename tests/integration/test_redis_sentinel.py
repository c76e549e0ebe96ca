"""A server on a Sentinel-managed Valkey primary (one replica, three sentinels) whose primary is killed
(SIGKILL) under load: writes go on, and the cache comes back on the promoted replica by itself."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx

from telemetry_server import redis_engines
from tests.integration.conftest import ServerProcess, count_stored, wait_until
from tests.integration.test_faults import WRITE_STATUSES, Load

RECOVERY_SECONDS = 30  # generous: recovery is asserted by what the server answers, never by how fast


def test_a_sentinel_failover_loses_no_acknowledged_write_and_the_cache_recovers(
    work_dir: Path,
    server_factory: Callable[..., ServerProcess],
    mongo_uri: str,
    metric_name: str,
) -> None:
    with redis_engines.valkey_sentinels(work_dir / "sentinels") as deployment:
        server = server_factory(REDIS_URI=deployment.uri)
        listing = {"name": metric_name, "limit": 1000}
        with httpx.Client(base_url=server.base_url, timeout=30) as http:
            assert http.post("/metrics", json={"name": metric_name, "value": -1}).status_code == 201
            http.get("/metrics", params=listing)
            assert http.get("/metrics", params=listing).headers["x-cache"] == "hit"

            with Load(server.base_url, metric_name, threads=4, writes_per_second=100) as load:
                assert wait_until(lambda: len(load.acknowledged_so_far()) >= 50, 20), load.statuses
                old = deployment.primary()
                old.kill()
                killed_at = len(load.acknowledged_so_far())
                deployment.wait_for_new_primary(old)
                assert wait_until(lambda: len(load.acknowledged_so_far()) >= killed_at + 100, 30), load.statuses
            acknowledged = [*load.acknowledged]

            def fresh_and_cached() -> bool:
                answers = [http.get("/metrics", params=listing) for _ in range(4)]
                counts = {len(answer.json()["items"]) for answer in answers}
                return counts == {1 + len(acknowledged)} and answers[-1].headers["x-cache"] == "hit"

            assert wait_until(fresh_and_cached, RECOVERY_SECONDS), "the cache did not recover: stale or never cached"
            assert http.get("/readyz").json()["redis"] == "up"
        server.stop()  # before its Redis goes

    print(f"kill -9 of the Sentinel-managed primary: statuses {dict(load.statuses)}")
    assert count_stored(mongo_uri, "telemetry_server_test", acknowledged) == len(acknowledged)
    assert {status for (method, status) in load.statuses if method == "POST"} <= WRITE_STATUSES, load.statuses
    assert {status for (method, status) in load.statuses if method == "GET"} <= {200, 503}, load.statuses
    log = server.log_path.read_text()
    assert "dropped the whole Redis cache: a failover" in log, "no worker saw the failover: the test proves nothing"
