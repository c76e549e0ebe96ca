"""Shared parts of the fault measurements (bench/redis_outage.py, bench/auth_flood.py): engines on loopback,
the server's worker processes and their memory, and one timed request."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from bench.engine import ENGINE_SCRIPT
from bench.processes import LOOPBACK, Child, free_port, spawn, stop, wait_for_port, wait_for_status
from bench.server import Server, server_env
from telemetry_server import engines


def start_mongo(folder: Path) -> tuple[Child, str]:
    """MONGO_ENGINE_CMD; else the fast engine if it is already built (this never waits for a build); else
    SecantusDB's Python server."""
    port = free_port()
    data = folder / "mongo"
    data.mkdir(parents=True, exist_ok=True)
    built = subprocess.run(["bash", str(ENGINE_SCRIPT), "built"], capture_output=True, check=False, timeout=30)
    if not os.environ.get("MONGO_ENGINE_CMD") and built.returncode == 0:
        command = ["bash", str(ENGINE_SCRIPT), "start", str(port), str(data)]
    else:
        command = engines.mongo_command(port, data, os.environ)
    child = spawn(f"mongo engine ({Path(command[0]).name})", command, folder / "mongo.log")
    wait_for_port(child, port, timeout=60)
    return child, f"mongodb://{LOOPBACK}:{port}"


def start_redis(port: int, folder: Path) -> Child:
    """On a port of the caller's choosing, so that it can be started again where the server expects it."""
    data = folder / "redis"
    data.mkdir(parents=True, exist_ok=True)
    child = spawn("redis", engines.redis_command(port, data), folder / "redis.log")
    wait_for_port(child, port)
    return child


def start_server(mongo_uri: str, redis_uri: str, workers: int, folder: Path, settings: Mapping[str, str]) -> Server:
    """`telemetry-server serve` with extra settings, ready once /readyz answers (a GET of /metrics, which
    bench.server waits for, would be refused with auth on, and each refusal spends the address's budget)."""
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "telemetry_server", "serve", "--workers", str(workers), "--port", str(port)]
    env = {**server_env(mongo_uri, redis_uri, workers, port, folder), **settings}
    child = spawn("telemetry-server", command, folder / "server.log", env, folder)
    try:
        wait_for_status(child, port, "/readyz", timeout=60)
    except Exception:
        stop(child)
        raise
    return Server(child, port)


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids = [int(k) for k in (task / "children").read_text().split()]
        except OSError:
            continue
        for kid in kids:
            found += [kid, *_descendants(kid)]
    return found


def worker_rss_mb(server_pid: int) -> list[float]:
    """Resident memory of each worker process under the server (MB), from /proc."""
    sizes = []
    for pid in _descendants(server_pid):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                sizes.append(round(int(line.split()[1]) / 1024, 1))
    return sorted(sizes)


def timed(
    port: int, method: str, path: str, body: bytes | None = None, headers: Mapping[str, str] | None = None
) -> tuple[int, float, dict[str, str]]:
    """One request on a fresh connection (so that requests spread over the workers): status, ms, headers."""
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=60)
    started = time.perf_counter()
    try:
        conn.request(method, path, body=body, headers={"content-type": "application/json", **(headers or {})})
        response = conn.getresponse()
        response.read()
        return response.status, (time.perf_counter() - started) * 1000, {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()


def percentile(values: Sequence[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 1)
