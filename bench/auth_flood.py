"""A flood of made-up API keys beside a legitimate client: what the flood gets (401 costs a MongoDB lookup,
429 does not), the legitimate client's latency, and the workers' memory, before and during the flood.

    .venv/bin/python -m bench.auth_flood [--flood 30000] [--workers 2]

With auth on, a legitimate reader sends cached listings on 2 keep-alive connections, first alone (baseline),
then beside 4 connections that send `--flood` requests, each with a made-up key id, from the same address.
Loopback only, bounded by the request counts. Prints one JSON document; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import http.client
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from bench.faults import percentile, start_mongo, start_redis, start_server, worker_rss_mb
from bench.processes import LOOPBACK, free_port, started_children
from telemetry_server.auth.keys import generate_key

LISTING = "/metrics?name=flood.cpu&limit=10"


def say(message: str) -> None:
    print(f"[auth_flood] {message}", file=sys.stderr, flush=True)


def send(conn: http.client.HTTPConnection, method: str, path: str, key: str, body: bytes | None = None) -> int:
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    response.read()
    return response.status


class Legit:
    """Listings with a real key on `connections` keep-alive connections until stopped; latencies in ms."""

    def __init__(self, port: int, key: str, connections: int = 2) -> None:
        self.latencies: list[float] = []
        self.statuses: Counter[int] = Counter()
        self._port, self._key, self._connections = port, key, connections
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def run_for(self, requests: int) -> dict[str, Any]:
        """Alone, until `requests` are answered."""
        self.start()
        while len(self.latencies) < requests:
            time.sleep(0.05)
        return self.stop()

    def start(self) -> None:
        self.latencies.clear()
        self.statuses.clear()
        self._stop.clear()
        self._threads = [threading.Thread(target=self._run) for _ in range(self._connections)]
        for thread in self._threads:
            thread.start()

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)
        return {
            "requests": len(self.latencies),
            "statuses": {str(k): v for k, v in self.statuses.items()},
            "p50_ms": percentile(self.latencies, 0.5),
            "p99_ms": percentile(self.latencies, 0.99),
        }

    def _run(self) -> None:
        conn = http.client.HTTPConnection(LOOPBACK, self._port, timeout=60)
        try:
            while not self._stop.is_set():
                started = time.perf_counter()
                status = send(conn, "GET", LISTING, self._key)
                with self._lock:
                    self.latencies.append((time.perf_counter() - started) * 1000)
                    self.statuses[status] += 1
        finally:
            conn.close()


def flood(port: int, requests: int, connections: int = 4) -> dict[str, Any]:
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    per_connection = requests // connections

    def run() -> None:
        conn = http.client.HTTPConnection(LOOPBACK, port, timeout=60)
        seen: Counter[int] = Counter()
        try:
            for _ in range(per_connection):
                seen[send(conn, "GET", LISTING, generate_key()[0])] += 1
        finally:
            conn.close()
            with lock:
                statuses.update(seen)

    started = time.perf_counter()
    threads = [threading.Thread(target=run) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    return {
        "requests": per_connection * connections,
        "seconds": round(time.perf_counter() - started, 1),
        "statuses": {str(k): v for k, v in statuses.items()},
    }


def run(requests: int, workers: int) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="auth-flood-"))
    admin = generate_key()[0]
    with started_children() as started:
        mongo, mongo_uri = start_mongo(folder)
        started.append(mongo)
        redis_port = free_port()
        started.append(start_redis(redis_port, folder))
        auth = {"AUTH_ENABLED": "true", "BOOTSTRAP_ADMIN_KEY": admin}
        server = start_server(mongo_uri, f"redis://127.0.0.1:{redis_port}", workers, folder / "server", auth)
        started.append(server.child)
        conn = http.client.HTTPConnection(LOOPBACK, server.port, timeout=60)
        send(conn, "POST", "/metrics", admin, orjson.dumps({"name": "flood.cpu", "value": 1}))
        conn.request(
            "POST",
            "/admin/keys",
            body=b'{"role": "read"}',
            headers={"authorization": f"Bearer {admin}", "content-type": "application/json"},
        )
        reader = orjson.loads(conn.getresponse().read())["key"]
        conn.close()
        say(f"server on {server.url} ({workers} workers, {mongo.name}); baseline")
        legit = Legit(server.port, reader)
        legit.run_for(500)  # warm: both connections' workers know the key and the listing is cached
        baseline = legit.run_for(3000)
        rss_before = worker_rss_mb(server.child.pid)
        say(f"flood of {requests} made-up keys beside the legitimate client")
        legit.start()
        flooded = flood(server.port, requests)
        during = legit.stop()
        rss_after = worker_rss_mb(server.child.pid)
    return {
        "workers": workers,
        "legit_alone": baseline,
        "flood": flooded,
        "legit_during_flood": during,
        "worker_rss_mb": {"before": rss_before, "after_flood": rss_after},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flood", type=int, default=30_000)
    parser.add_argument("--workers", type=int, default=2)
    options = parser.parse_args()
    print(orjson.dumps(run(options.flood, options.workers), option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
