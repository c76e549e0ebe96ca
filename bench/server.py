"""Our server under test: `telemetry-server serve` against the benchmark's engines, and its cold start."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.processes import Child, free_port, http_status, spawn, stop, wait_for_status

COLD_START_PATH = "/metrics?limit=1"


@dataclass
class Server:
    child: Child
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


# Set unless the caller's environment sets them: one load generator on one address would otherwise meet the
# per-client rate limit. A huge limit keeps the limiter's code path in every request. The burst is 10x the
# rate because 64 connections arriving together each lease ~50 ms of the rate: with burst == rate some of
# them got 0 tokens and a 429 at 15k req/s (measured 2026-11-28; RATE_LIMIT_PER_SECOND=0 turns it off).
BENCH_DEFAULTS = {"RATE_LIMIT_PER_SECOND": "100000000", "RATE_LIMIT_BURST": "1000000000"}


def server_env(mongo_uri: str, redis_uri: str, workers: int, port: int, folder: Path) -> dict[str, str]:
    """Explicit settings (real variables win over .env files, and the server runs in `folder`, which has none)."""
    return {
        **BENCH_DEFAULTS,
        **os.environ,
        "ENVIRONMENT": "test",
        "APP_ENV": "bench",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WORKERS": str(workers),
        "MONGO_URI": mongo_uri,
        "REDIS_URI": redis_uri,
        "LOG_LEVEL": "warning",
        "DATA_DIR": str(folder / "data"),
    }


def start_server(mongo_uri: str, redis_uri: str, workers: int, folder: Path) -> tuple[Server, dict[str, float]]:
    """Start the server; return it with its cold start: ms from spawn to the first 200 of /healthz and of a GET."""
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "telemetry_server", "serve", "--workers", str(workers), "--port", str(port)]
    begun = time.perf_counter()
    child = spawn(
        "telemetry-server",
        command,
        folder / "server.log",
        server_env(mongo_uri, redis_uri, workers, port, folder),
        folder,
    )
    try:
        wait_for_status(child, port, "/healthz", timeout=60)
        healthz_ms = (time.perf_counter() - begun) * 1000
        wait_for_status(child, port, COLD_START_PATH, timeout=60)
        first_get_ms = (time.perf_counter() - begun) * 1000
    except Exception:
        stop(child)
        raise
    return Server(child, port), {"healthz_ms": round(healthz_ms, 1), "first_get_ms": round(first_get_ms, 1)}


def endpoint_status(server: Server, path: str) -> int | None:
    return http_status(server.port, path, timeout=10)
