"""Helpers for the tests that run real agents (Prometheus, vmagent, OpenTelemetry SDKs) against the server:
starting their programs, a scrape target, and reading back what the server lists."""

from __future__ import annotations

import http.server
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from telemetry_server import engines

# (name, tags, timestamp in epoch ms, value): a stored point as compared with what an agent sent.
Row = tuple[str, tuple[str, ...], int, float]
INSTALL_HINT = "scripts/agents.sh apt installs it (scripts/test.sh runs that)"


def program(name: str, package: str) -> str:
    """The path of a Debian-packaged program, or a visible skip saying what is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} (Debian package {package}) is not installed: {INSTALL_HINT}")
    return path


@contextmanager
def running(name: str, command: list[str], port: int, log_path: Path) -> Iterator[None]:
    """A program started for one test and stopped after it, whatever happened."""
    engine = engines.start(name, command, port, log_path)
    try:
        yield
    finally:
        engines.stop_pid(engine.pid)


@contextmanager
def scrape_target(exposition: Callable[[int], str]) -> Iterator[str]:
    """An HTTP server on loopback answering each GET with `exposition(n)` for its n-th scrape; yields host:port."""
    scrapes = iter(range(1, 1_000_000))
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with lock:
                body = exposition(next(scrapes)).encode()
            self.send_response(200)
            self.send_header("content-type", "text/plain; version=0.0.4")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer((engines.LOOPBACK, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{engines.LOOPBACK}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def listed(client: httpx.Client, tag: str, before_ms: int | None = None) -> set[Row]:
    """Every metric the server lists with `tag` (and a timestamp before `before_ms`), all pages."""
    rows: set[Row] = set()
    params: dict[str, str | int] = {"tag": tag, "limit": 1000, "sort": "asc"}
    if before_ms is not None:
        params["to"] = before_ms
    while True:
        reply = client.get("/metrics", params=params)
        assert reply.status_code == 200, reply.text
        page = reply.json()
        for item in page["items"]:
            stamp = datetime.fromisoformat(item["timestamp"].replace("Z", "+00:00"))
            rows.add((item["name"], tuple(item["tags"]), round(stamp.timestamp() * 1000), float(item["value"])))
        if page["next"] is None:
            return rows
        params["cursor"] = page["next"]
