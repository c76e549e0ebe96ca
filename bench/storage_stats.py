"""Bytes stored per point: collStats data size plus index size, summed over every collection of one database."""

from __future__ import annotations

from typing import Any

from pymongo import MongoClient

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
