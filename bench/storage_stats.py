"""Bytes stored per point: collStats data size plus index size, summed over every collection of one database."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pymongo import MongoClient

from bench.processes import free_port
from bench.server import server_env

# server.py runs the server with APP_ENV=bench: this is its database.
BENCH_DATABASE = "telemetry_server_bench"


def stored_bytes(mongo_uri: str, points: int, database: str = BENCH_DATABASE) -> dict[str, Any]:
    """What the database holds for `points` points: every collection counts (series, buckets, ids, counters...),
    since each is part of what a point costs. The engine reports `storageSize` equal to `size` (no compression
    seen, docs/storage-design.md), so data is `size`."""
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri, serverSelectionTimeoutMS=10_000)
    try:
        db = client[database]
        collections: dict[str, dict[str, int]] = {}
        for name in sorted(db.list_collection_names()):
            stats = db.command("collStats", name)
            collections[name] = {
                "count": int(stats.get("count", 0)),
                "data_bytes": int(stats.get("size", 0)),
                "index_bytes": int(stats.get("totalIndexSize", 0)),
            }
    finally:
        client.close()
    data = sum(c["data_bytes"] for c in collections.values())
    indexes = sum(c["index_bytes"] for c in collections.values())
    return {
        "points": points,
        "data_bytes": data,
        "index_bytes": indexes,
        "bytes_per_point": round((data + indexes) / points, 1) if points else None,
        "collections": collections,
    }


def compact(mongo_uri: str, redis_uri: str, folder: Path, timeout_s: float) -> dict[str, Any] | None:
    """Run `telemetry-server compact` to the end, as the servers' background upkeep would in their first minutes;
    None when the server has no such command. A batch POST spreads over as many series as it has points (the
    seed's 1,000-point bodies touch 1,000 series), so right after it most buckets hold one point."""
    folder.mkdir(parents=True, exist_ok=True)
    env = server_env(mongo_uri, redis_uri, 1, free_port(), folder)
    begun = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "telemetry_server", "compact"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if done.returncode == 2 and "invalid choice" in done.stderr:
        return None
    if done.returncode != 0:
        raise RuntimeError(f"telemetry-server compact exited {done.returncode}: {done.stderr[-500:]}")
    return {"seconds": round(time.perf_counter() - begun, 1), "said": done.stdout.strip()[-300:]}
