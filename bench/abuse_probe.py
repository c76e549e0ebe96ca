"""Abuse probes over real sockets: what a hostile pattern of requests costs a running server, and its writers.

Run: `.venv/bin/python -m bench.abuse_probe [--case heavy-reads|bad-batch|all] [--metrics 100000] [--keep]`.
It starts its own MongoDB-wire engine (as `python -m bench` chooses it), Redis and a 2-worker server in a
temporary folder, seeds metrics through the API, runs the case and prints what it saw as JSON; settings such
as `QUERY_TIMEOUT_MS` are taken from the environment. Every request is on loopback and bounded.

- heavy-reads: 16 `GET /metrics/aggregate?fn=p95&range=100w&group_by=host` and 8 uncached value-filtered
  listings at once, while one writer POSTs a metric every 0.2 s; then how much CPU the engine still burns
  once every reader has its answer (work nobody waits for any more).
- bad-batch: one ~950 KiB batch whose every metric carries 64 invalid tags; the answer's size, the wall time,
  and the CPU time and memory of the workers.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from bench.engine import choose_engine, start_mongo, start_redis
from bench.processes import Child, stop
from bench.seed import post_batches, request
from bench.server import Server, start_server

HEAVY_AGGREGATE = "/metrics/aggregate?fn=p95&range=100w&group_by=host"
CLIENT_TIMEOUT_S = 30.0
HOSTS = [f"h{n:02d}" for n in range(50)]
NAMES = ["cpu.load", "mem.used", "disk.io", "net.rx"]


def seed_bodies(count: int, batch: int = 5000) -> list[bytes]:
    rng = random.Random(12)
    now = datetime.now(UTC)
    items = []
    for i in range(count):
        stamp = now - timedelta(seconds=rng.uniform(0, 30 * 86_400))
        items.append(
            {
                "name": NAMES[i % len(NAMES)],
                "tags": [f"host:{HOSTS[i % len(HOSTS)]}", f"region:r{i % 3}"],
                "value": round(rng.random(), 4),
                "timestamp": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            }
        )
    return [orjson.dumps(items[i : i + batch]) for i in range(0, len(items), batch)]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_kib(pid: int) -> dict[str, int]:
    """Resident set now and at its peak."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry.name))
    found, queue = [], [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def timed(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int | str, float, int]:
    """(status or the exception's name, seconds, response bytes)."""
    started = time.perf_counter()
    try:
        status, _, payload = request(port, method, path, body, timeout=CLIENT_TIMEOUT_S)
    except Exception as exc:  # a timeout or a reset is what we measure here, not a failure of the probe
        return type(exc).__name__, time.perf_counter() - started, 0
    return status, time.perf_counter() - started, len(payload)


def summary(samples: list[tuple[int | str, float, int]]) -> dict[str, Any]:
    seconds = [s for _, s, _ in samples]
    return {
        "statuses": dict(Counter(str(status) for status, _, _ in samples)),
        "median_s": round(statistics.median(seconds), 2) if seconds else None,
        "max_s": round(max(seconds), 2) if seconds else None,
    }


def heavy_reads(server: Server, engine: Child) -> dict[str, Any]:
    readers = [("GET", HEAVY_AGGREGATE)] * 16
    # Each listing its own value bound: a distinct cache key, so every one reaches the engine.
    readers += [("GET", f"/metrics?name=cpu.load&value_gt=0.5{n:03d}") for n in range(8)]
    done = threading.Event()
    writes: list[tuple[int | str, float, int]] = []

    def writer() -> None:
        while not done.is_set():
            body = orjson.dumps({"name": "probe.write", "tags": ["host:w"], "value": 1})
            writes.append(timed(server.port, "POST", "/metrics", body))
            done.wait(0.2)

    engine_cpu = cpu_seconds(engine.pid)
    with concurrent.futures.ThreadPoolExecutor(len(readers) + 1) as pool:
        write_loop = pool.submit(writer)
        answers = list(pool.map(lambda r: (r[1], timed(server.port, r[0], r[1])), readers))
        done.set()
        write_loop.result()
    read_cpu = cpu_seconds(engine.pid) - engine_cpu
    time.sleep(10)  # what the engine still computes once nobody waits for it
    after_cpu = cpu_seconds(engine.pid) - engine_cpu - read_cpu
    return {
        "aggregate": summary([sample for path, sample in answers if path == HEAVY_AGGREGATE]),
        "listing": summary([sample for path, sample in answers if path != HEAVY_AGGREGATE]),
        "writes": summary(writes),
        "engine_cpu_s_while_reading": round(read_cpu, 2),
        "engine_cpu_s_in_the_10_s_after": round(after_cpu, 2),
    }


def bad_batch(server: Server) -> dict[str, Any]:
    item = {"name": "cpu.load", "value": 1, "tags": [1] * 64}
    count = 950 * 1024 // len(orjson.dumps(item))
    body = orjson.dumps([item] * count)
    workers = descendants(server.child.pid)
    cpu = {pid: cpu_seconds(pid) for pid in workers}
    memory = {pid: memory_kib(pid) for pid in workers}
    status, seconds, size = timed(server.port, "POST", "/metrics", body)
    after = {pid: memory_kib(pid) for pid in workers}
    return {
        "body_kib": round(len(body) / 1024, 1),
        "metrics": count,
        "status": status,
        "answer_kib": round(size / 1024, 1),
        "wall_s": round(seconds, 3),
        "worker_cpu_s": round(sum(cpu_seconds(pid) - cpu[pid] for pid in workers), 3),
        "worker_rss_mib": {
            "before": [round(memory[pid]["VmRSS"] / 1024, 1) for pid in workers],
            "after": [round(after[pid]["VmRSS"] / 1024, 1) for pid in workers],
            "peak_growth": round(max(after[pid]["VmHWM"] - memory[pid]["VmHWM"] for pid in workers) / 1024, 1),
        },
    }


@contextlib.contextmanager
def running(folder: Path, workers: int) -> Iterator[tuple[Server, Child]]:
    started: list[Child] = []
    try:
        choice = choose_engine(build_timeout=5)
        print(f"engine: {choice.name} ({choice.note})", file=sys.stderr)
        mongo, mongo_uri = start_mongo(choice, folder)
        started.append(mongo)
        redis, redis_uri = start_redis(folder)
        started.append(redis)
        server, _ = start_server(mongo_uri, redis_uri, workers, folder / "server")
        started.append(server.child)
        yield server, mongo
    finally:
        for child in reversed(started):
            stop(child)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=["heavy-reads", "bad-batch", "all"], default="all")
    parser.add_argument("--metrics", type=int, default=100_000, help="seeded before heavy-reads")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")
    options = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="abuse-probe-"))
    results: dict[str, Any] = {}
    try:
        with running(folder, options.workers) as (server, engine):
            if options.case in ("bad-batch", "all"):
                results["bad_batch"] = bad_batch(server)
            if options.case in ("heavy-reads", "all"):
                print(f"seeding {options.metrics:,} metrics", file=sys.stderr)
                begun = time.perf_counter()
                post_batches(server.port, seed_bodies(options.metrics))
                results["seed_s"] = round(time.perf_counter() - begun, 1)
                results["heavy_reads"] = heavy_reads(server, engine)
    finally:
        if options.keep:
            print(f"kept {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)
    print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
