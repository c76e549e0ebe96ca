"""A server on a Sentinel-managed Valkey primary (one replica, three sentinels) whose primary is killed
(SIGKILL) under load: writes go on, and the cache comes back on the promoted replica by itself."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from telemetry_server import redis_engines
from tests.integration.conftest import ServerProcess
from tests.integration.test_redis_cluster import kill_under_load


def test_a_sentinel_failover_loses_no_acknowledged_write_and_the_cache_recovers(
    work_dir: Path,
    server_factory: Callable[..., ServerProcess],
    mongo_uri: str,
    metric_name: str,
) -> None:
    with redis_engines.running(redis_engines.start_sentinels(work_dir / "sentinels")) as deployment:
        server = server_factory(REDIS_URI=deployment.uri)

        def kill() -> None:
            old = deployment.primary()
            old.kill()
            deployment.wait_for_new_primary(old)

        kill_under_load(server, mongo_uri, metric_name, kill)
