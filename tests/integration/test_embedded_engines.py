"""A server started with `telemetry-server serve` and no URIs runs engines of its own, and keeps them running."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.integration.conftest import ServerProcess, wait_until

STARTED = re.compile(r"embedded (mongo|redis) engine \S+ \(pid (\d+)\) at ")


def process_state(pid: int) -> str | None:
    """The kernel's state letter for a process (Z: a zombie nobody reaped), None when there is none."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


def test_a_killed_embedded_engine_is_reaped_and_restarted(
    server_factory: Callable[..., ServerProcess], work_dir: Path, metric_name: str
) -> None:
    server = server_factory(
        workers=1, MONGO_URI="", REDIS_URI="", DATA_DIR=str(work_dir / "embedded"), LOG_LEVEL="info"
    )
    pids = {kind: int(pid) for kind, pid in STARTED.findall(server.log_path.read_text())}
    assert set(pids) == {"mongo", "redis"}, server.log_path.read_text()

    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        stored = client.post("/metrics", json={"name": metric_name, "value": 1})
        assert stored.status_code == 201, stored.text

        def recovered(kind: str) -> bool:
            back = re.search(rf"embedded {kind} engine \S+ is back", server.log_path.read_text())
            ready = client.get("/readyz")
            return back is not None and ready.status_code == 200 and ready.json()[kind] == "up"

        for kind, pid in pids.items():
            os.kill(pid, signal.SIGKILL)
            assert wait_until(lambda kind=kind: recovered(kind)), server.log_path.read_text()[-3000:]
            assert process_state(pid) in (None, "X"), f"the killed {kind} engine was not reaped"

        assert client.get(f"/metrics/{stored.json()['id']}").status_code == 200  # same data, acknowledged write kept
        assert client.post("/metrics", json={"name": metric_name, "value": 2}).status_code == 201

    log = server.log_path.read_text()
    for kind in pids:
        # Once when it died, once when it was back: not a line per attempt or per check.
        assert len(re.findall(rf"embedded {kind} engine \S+ \(pid \d+\) was killed by SIGKILL; restarting", log)) == 1
        assert len(re.findall(rf"embedded {kind} engine \S+ is back", log)) == 1
