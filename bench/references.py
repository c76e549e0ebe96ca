"""The two references every result is divided by: the hello-world ceiling and the engine's raw insert_many rate."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, MongoClient

from bench.loadgen import Load, run_wrk
from bench.processes import free_port, spawn, stop, wait_for_status
from bench.workload import HOSTS, NAMES, REGIONS, write_records

# The indexes MongoMetricStore creates, so the raw rate pays for the same index maintenance.
RAW_INDEXES = [
    IndexModel([("name", ASCENDING), ("timestamp", DESCENDING)], name="name_timestamp"),
    IndexModel([("tags", ASCENDING), ("timestamp", DESCENDING)], name="tags_timestamp"),
    IndexModel([("timestamp", DESCENDING)], name="timestamp"),
]


def measure_hello(workers: int, connections: int, duration_s: float, folder: Path) -> dict[str, Any]:
    """wrk against bench/hello_asgi.py under the same Granian settings as our server."""
    port = free_port()
    command = [sys.executable, "-m", "bench.hello_asgi", "--port", str(port), "--workers", str(workers)]
    repo = Path(__file__).resolve().parent.parent
    child = spawn("hello_asgi", command, folder / f"hello-{workers}w.log", cwd=repo)
    try:
        wait_for_status(child, port, "/", timeout=30)
        paths = write_records(folder / "hello.paths", ["/"])
        load = Load("get.lua", (str(paths), "1"), connections, 2, duration_s)
        return run_wrk(f"http://127.0.0.1:{port}", load) | {"endpoint": "GET / (hello)"}
    finally:
        stop(child)


def measure_insert_many(mongo_uri: str, batch_size: int, duration_s: float, max_docs: int) -> dict[str, Any]:
    """Sequential pymongo insert_many of our document shape, bounded by time and count; docs/s."""
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri, tz_aware=True)
    try:
        collection = client["bench_raw"]["metrics"]
        collection.drop()
        collection.create_indexes(RAW_INDEXES)
        base = datetime.now(UTC)
        template = [
            {
                "name": NAMES[i % len(NAMES)],
                "tags": [f"host:{HOSTS[i % len(HOSTS)]}", f"region:{REGIONS[i % len(REGIONS)]}"],
                "value": float(i % 1000),
                "timestamp": base - timedelta(milliseconds=i),
            }
            for i in range(batch_size)
        ]
        collection.insert_many([dict(doc) for doc in template])  # warm the connection and the collection
        inserted = 0
        begun = time.perf_counter()
        while inserted < max_docs and time.perf_counter() - begun < duration_s:
            collection.insert_many([dict(doc) for doc in template], ordered=True)
            inserted += batch_size
        seconds = time.perf_counter() - begun
        client["bench_raw"].drop_collection("metrics")
    finally:
        client.close()
    return {
        "docs": inserted,
        "duration_s": round(seconds, 3),
        "docs_per_s": round(inserted / seconds, 1),
        "batch_size": batch_size,
    }
