"""Aggregates on the bucket store, uncached: `python -m bench.bucket_aggregate [--points 200000] [--runs 200]`.

Starts the fast engine (scripts/engine.sh) in a temporary folder, writes `--points` points through
MongoBucketStore over the 30 hours before now, `--series` series (the workload's names, then hosts) each in
batches of 1,000 of its own (the buckets compaction leaves), plus `--trickle` single writes (small buckets
not compacted yet), then times BucketAggregationStore.aggregate for each question `--runs` times,
sequentially.
No HTTP and no cache: what the store costs, the part issue 9's "top 5 events today P99 < 100 ms with the
cache off" is about. Prints JSON: per question, the rows' size and milliseconds (p50, p95, p99, max).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from bench.engine import ENGINE_SCRIPT
from bench.processes import LOOPBACK, free_port, spawn, stop, wait_for_port
from bench.workload import HOSTS, NAMES
from telemetry_server.models.aggregation import AggregateQuery, parse_aggregate_query
from telemetry_server.models.metric import MetricInput
from telemetry_server.storage.bucket_aggregation import BucketAggregationStore
from telemetry_server.storage.mongo_buckets import MongoBucketStore

SPAN = timedelta(hours=30)
BATCH = 1000


def questions(now: datetime) -> dict[str, AggregateQuery]:
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    window = [("from", (now - timedelta(hours=6, minutes=7)).isoformat()), ("to", now.isoformat())]
    hot = NAMES[0]

    def query(*params: tuple[str, str]) -> AggregateQuery:
        return parse_aggregate_query(list(params), now)

    return {
        # what the prompt "what are the top 5 events today" asks (prompt/grammar.py)
        "top 5 events today": query(
            ("fn", "count"),
            ("group_by", "name"),
            ("top", "5"),
            ("from", today.isoformat()),
            ("to", (today + timedelta(days=1)).isoformat()),
        ),
        "count of every point today": query(("fn", "count"), ("from", today.isoformat())),
        "avg of one name, 15m bins, 6 h window cut mid-bucket": query(
            ("fn", "avg"), ("name", hot), ("bucket", "15m"), *window
        ),
        "sum by host, 6 h window": query(("fn", "sum"), ("group_by", "host"), *window),
        "p95 of one name today": query(("fn", "p95"), ("name", hot), ("from", today.isoformat())),
        "count value_gt 90, 6 h window": query(("fn", "count"), ("value_gt", "90"), *window),
    }


async def seed(store: MongoBucketStore, points: int, series: int, trickle: int, now: datetime) -> None:
    """`points` over `series` series (name, host), each written in time order by batches of 1,000: the buckets a
    compactor leaves (a batch of many series makes small buckets until it merges them), then the trickle."""
    rng = random.Random(3)
    per_series = (points - trickle) // series
    step = SPAN / per_series
    for number in range(series):
        name, host = NAMES[number % len(NAMES)], HOSTS[(number // len(NAMES)) % len(HOSTS)]
        batch = [
            MetricInput(name, (f"host:{host}",), round(rng.random() * 100, 3), now - SPAN + step * (i + rng.random()))
            for i in range(per_series)
        ]
        for start in range(0, len(batch), BATCH):
            await store.insert(batch[start : start + BATCH])
    for i in range(trickle):
        at = now - timedelta(seconds=trickle) + timedelta(seconds=i)
        await store.insert([MetricInput(NAMES[i % len(NAMES)], ("host:h00",), rng.random() * 100, at)])


def progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def rank(p: int) -> float:
        return round(ordered[max(1, -(-p * len(ordered) // 100)) - 1], 2)

    return {"p50_ms": rank(50), "p95_ms": rank(95), "p99_ms": rank(99), "max_ms": round(ordered[-1], 2)}


async def run(uri: str, args: argparse.Namespace) -> dict[str, Any]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True)
    try:
        store = MongoBucketStore(client, "bench", 1_000_000)
        await store.ensure_indexes()
        now = datetime.now(UTC)
        started = time.perf_counter()
        await seed(store, args.points, args.series, args.trickle, now)
        seeded_s = time.perf_counter() - started
        aggregations = BucketAggregationStore(client["bench"], store.registry)
        report: dict[str, Any] = {
            "points": args.points,
            "series": args.series,
            "trickle": args.trickle,
            "buckets": await client["bench"]["buckets"].count_documents({}),
            "seed_s": round(seeded_s, 1),
        }
        for label, query in questions(now).items():
            rows = await aggregations.aggregate(query, 10_000)  # warm-up
            samples = []
            for _ in range(args.runs):
                began = time.perf_counter()
                await aggregations.aggregate(query, 10_000)
                samples.append((time.perf_counter() - began) * 1000)
            report[label] = {"rows": len(rows), "counted": sum(row.count for row in rows), **summary(samples)}
            progress(f"{label}: {report[label]}")
        return report
    finally:
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=200_000)
    parser.add_argument("--series", type=int, default=50, help="(name, host) pairs the points are spread over")
    parser.add_argument("--trickle", type=int, default=200, help="single writes, one a second, before now")
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bucket-aggregate-") as tmp:
        port = free_port()
        command = ["bash", str(ENGINE_SCRIPT), "start", str(port), str(Path(tmp) / "engine")]
        child = spawn("secantus-mdb", command, Path(tmp) / "engine.log")
        try:
            wait_for_port(child, port, timeout=60)
            report = asyncio.run(run(f"mongodb://{LOOPBACK}:{port}", args))
        finally:
            stop(child)
    report["load_average"] = [round(load_before, 1), round(os.getloadavg()[0], 1)]
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
