"""What storage upkeep costs: compaction and retention passes (storage/bucket_upkeep.py) on a MongoDB-wire engine.

Fills a scratch database with full buckets and a trickle's worth of small ones, then times: a pass with nothing
to do (what every period costs, after the first passes have read every bucket once), compaction passes until
caught up, and sweep passes (with 1m and 1h rollups) dropping half the points. Prints one JSON document. A
measurement, not a gate; the database is dropped after.

    .venv/bin/python -m bench.upkeep_probe --mongo-uri mongodb://127.0.0.1:PORT
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
import uuid
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel

from telemetry_server.models.retention import RollupSize
from telemetry_server.models.timestamps import to_millis
from telemetry_server.storage.bucket_columns import MAX_POINTS, Slot, bucket_document
from telemetry_server.storage.bucket_upkeep import BucketUpkeep, UpkeepTally
from telemetry_server.storage.mongo_rollups import MongoRollups

Doc = dict[str, Any]
NOW = datetime.now(UTC).replace(microsecond=0)
# The bucket store's indexes (docs/storage-design.md, As built): upkeep reads by them and adds none.
BUCKET_INDEXES = [
    IndexModel([("series", ASCENDING), ("end", DESCENDING)], name="series_end"),
    IndexModel([("end", DESCENDING)], name="end"),
]


def full_buckets(series: int, count: int, start_ms: int) -> list[Doc]:
    """`count` buckets of MAX_POINTS points a second apart, as a batch ingest makes them."""
    docs = []
    for number in range(count):
        first = start_ms + number * MAX_POINTS * 1000
        slots = [
            Slot(first + n * 1000, random.random(), (series << 40) + number * MAX_POINTS + n) for n in range(MAX_POINTS)
        ]
        docs.append(bucket_document(series, slots))
    return docs


def small_buckets(series: int, count: int, start_ms: int) -> list[Doc]:
    """`count` one-point buckets ten seconds apart, as single POSTs make them."""
    return [
        bucket_document(series, [Slot(start_ms + n * 10_000, random.random(), (series << 40) + (1 << 39) + n)])
        for n in range(count)
    ]


async def timed_passes(upkeep: BucketUpkeep, **kinds: bool) -> dict[str, Any]:
    tally = UpkeepTally()
    passes = 0
    started = time.perf_counter()
    while True:
        one = await upkeep.run_pass(**kinds)
        passes += 1
        tally.add(one)
        if not one and upkeep.caught_up:
            break
    seconds = time.perf_counter() - started
    return {
        "passes": passes,
        "seconds": round(seconds, 2),
        "per_pass_ms": round(seconds / passes * 1000, 1),
        "tally": asdict(tally),
    }


async def probe(uri: str, series: int, full: int, small: int) -> dict[str, Any]:
    client: AsyncMongoClient[Doc] = AsyncMongoClient(uri, tz_aware=True)
    database = client[f"upkeep_probe_{uuid.uuid4().hex[:8]}"]
    now_ms = to_millis(NOW)
    span_ms = full * MAX_POINTS * 1000
    start_ms = now_ms - span_ms - 3_600_000
    try:
        await database["buckets"].create_indexes(BUCKET_INDEXES)
        for one in range(1, series + 1):
            await database["buckets"].insert_many(full_buckets(one, full, start_ms))
        clock = lambda: NOW  # noqa: E731
        # The first passes ever read every bucket once (by `end`); later ones only what ended since.
        first_walk = await timed_passes(BucketUpkeep(database, clock=clock), compact=True, sweep=False)
        idle = await timed_passes(BucketUpkeep(database, clock=clock), compact=True, sweep=False)
        # A trickle after that: one-point buckets ending from 30 s before the last pass's horizon on.
        for one in range(1, series + 1 if small else 1):
            await database["buckets"].insert_many(small_buckets(one, small, now_ms - 30_000))
        later = lambda: NOW + timedelta(hours=1)  # noqa: E731
        compaction = await timed_passes(BucketUpkeep(database, clock=later), compact=True, sweep=False)
        # Half the full buckets' span expires: about half their points are dropped, rolled up by minute and hour.
        retention = timedelta(milliseconds=now_ms - (start_ms + span_ms // 2))
        rollups = MongoRollups(database, (RollupSize.MINUTE, RollupSize.HOUR))
        sweep = await timed_passes(
            BucketUpkeep(database, retention=retention, rollups=rollups, clock=clock), compact=False, sweep=True
        )
        return {
            "now": NOW.isoformat(),
            "series": series,
            "full_buckets_per_series": full,
            "small_buckets_per_series": small,
            "first_walk": first_walk,
            "idle_pass": idle,
            "compaction": compaction,
            "sweep_with_rollups": sweep,
        }
    finally:
        await client.drop_database(database.name)
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mongo-uri", default=os.environ.get("MONGO_URI"), help="default: MONGO_URI")
    parser.add_argument("--series", type=int, default=100)
    parser.add_argument("--full", type=int, default=20, help="full buckets (1,000 points) per series")
    parser.add_argument("--small", type=int, default=200, help="one-point buckets per series")
    args = parser.parse_args()
    if not args.mongo_uri:
        parser.error("--mongo-uri or MONGO_URI is required (a loopback engine: scripts/services.sh up)")
    print(json.dumps(asyncio.run(probe(args.mongo_uri, args.series, args.full, args.small)), indent=2))


if __name__ == "__main__":
    main()
