"""Worker memory with many series: the RSS of a server whose database holds 100k series and 10M points, and
the bytes per series of the in-memory series index. Opt-in: it takes minutes.

    .venv/bin/python -m bench.series_memory [--series 100000] [--points 10000000] [--workers 1] [--requests 2000]

Fills a fresh engine directly in the bucket layout (series, counters, buckets of up to 1,000 points, one second
apart), starts `telemetry-server serve` on it (its cold start loads every series), sends `--requests` listings,
aggregates and single POSTs spread over random series, then reads each worker's VmRSS. The bytes per series of
the index are measured apart, in this process, with tracemalloc over a SeriesIndex of the same series. Writes
bench/results/<stamp>-series-memory.json (runs[0].memory, the shape the gate reads) and checks the `memory`
targets of bench/targets.toml; exits 1 when one is missed. Loopback only; progress on stderr.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
from pymongo import MongoClient

from bench.faults import start_mongo, start_redis, start_server, worker_rss_mb
from bench.gate import evaluate, load_targets, print_outcomes
from bench.processes import LOOPBACK, free_port, http_status, started_children
from bench.runner import RESULTS
from bench.storage_stats import BENCH_DATABASE, stored_bytes
from telemetry_server.models.timestamps import to_millis
from telemetry_server.storage.bucket_columns import MAX_POINTS, Slot, bucket_document
from telemetry_server.storage.series_index import Series, SeriesIndex, series_key

SIGNALS = ("cpu", "mem", "disk", "net", "latency")
REGIONS = ("eu", "us", "ap")
# The writer id the filled points are numbered under; the counter is left past it so the server takes others.
FILL_WRITER = 1
FULL_SERIES, FULL_POINTS = 100_000, 10_000_000


def say(message: str) -> None:
    print(f"[series_memory] {message}", file=sys.stderr, flush=True)


def series_of(series_id: int) -> Series:
    """Series 1..n: 40 services x 5 signals as names, a host per series and a region, as a fleet would look."""
    index = series_id - 1
    name = f"svc{index % 40:02d}.{SIGNALS[(index // 40) % len(SIGNALS)]}"
    return Series(series_id, name, (f"host:h{index // 200:05d}", f"region:{REGIONS[index % len(REGIONS)]}"))


def index_bytes_per_series(count: int) -> float:
    """What the index holds per series, strings and all, as a worker that loaded them from MongoDB does."""
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    # Strings built fresh, as BSON decoding gives them: nothing shared with the code's constants.
    index = SeriesIndex()
    index.add_all(
        Series(s.id, "".join(s.name), tuple("".join(t) for t in s.tags)) for s in map(series_of, range(1, count + 1))
    )
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(index) == count
    return round((after - before) / count, 1)


def buckets(series_count: int, points: int, end: datetime) -> Iterator[dict[str, Any]]:
    """`points` points over the series, one second apart within a series, the newest at `end`."""
    per_series, extra = divmod(points, series_count)
    end_ms = to_millis(end)
    seq = FILL_WRITER << 32
    for series_id in range(1, series_count + 1):
        count = per_series + (series_id <= extra)
        for first in range(0, count, MAX_POINTS):
            size = min(MAX_POINTS, count - first)
            slots = [Slot(end_ms - (count - 1 - i) * 1000, float(i % 97), seq + i) for i in range(first, first + size)]
            yield bucket_document(series_id, slots)
        seq += count


def fill(mongo_uri: str, series_count: int, points: int, end: datetime) -> float:
    """Write the series and their buckets straight into the server's database; seconds it took."""
    begun = time.perf_counter()
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri)
    try:
        db = client[BENCH_DATABASE]
        series = [series_of(i) for i in range(1, series_count + 1)]
        for start in range(0, series_count, 10_000):
            db["series"].insert_many(
                [
                    {"_id": s.id, "name": s.name, "tags": list(s.tags), "key": series_key(s.name, s.tags)}
                    for s in series[start : start + 10_000]
                ]
            )
        db["counters"].insert_many([{"_id": "series", "n": series_count}, {"_id": "writer", "n": FILL_WRITER}])
        batch: list[dict[str, Any]] = []
        written = 0
        last_said = time.monotonic()
        for doc in buckets(series_count, points, end):
            batch.append(doc)
            if len(batch) == 1_000:
                db["buckets"].insert_many(batch, ordered=False)
                written += sum(d["count"] for d in batch)
                batch = []
                if time.monotonic() - last_said > 5:
                    say(f"  filled {written:,} / {points:,} points ({written / (time.perf_counter() - begun):,.0f}/s)")
                    last_said = time.monotonic()
        if batch:
            db["buckets"].insert_many(batch, ordered=False)
    finally:
        client.close()
    return time.perf_counter() - begun


def traffic(port: int, series_count: int, requests: int) -> dict[str, int]:
    """Listings, aggregates and single POSTs over random series, on one keep-alive connection: statuses seen."""
    rng = random.Random(9)
    statuses: dict[str, int] = {}
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=60)
    last_said = time.monotonic()
    try:
        for i in range(requests):
            if time.monotonic() - last_said > 10:
                say(f"  {i:,} / {requests:,} requests")
                last_said = time.monotonic()
            series = series_of(rng.randrange(1, series_count + 1))
            kind = i % 10
            body = None
            if kind < 6:
                path = f"/metrics?{urlencode({'name': series.name, 'tag': series.tags[0], 'limit': 50})}"
                method = "GET"
            elif kind < 8:
                query = {"fn": "avg", "name": series.name, "tag": series.tags[1], "range": "1h"}
                path, method = f"/metrics/aggregate?{urlencode(query)}", "GET"
            else:
                point = {"name": series.name, "tags": list(series.tags), "value": rng.random()}
                path, method, body = "/metrics", "POST", orjson.dumps(point)
            conn.request(method, path, body=body, headers={"content-type": "application/json"})
            response = conn.getresponse()
            response.read()
            key = f"{method} {path.split('?')[0]} {response.status}"
            statuses[key] = statuses.get(key, 0) + 1
    finally:
        conn.close()
    return statuses


def run(options: argparse.Namespace) -> dict[str, Any]:
    say(f"index: bytes per series over {options.series:,} series (tracemalloc)")
    per_series = index_bytes_per_series(options.series)
    say(f"  {per_series} bytes per series")
    folder = Path(tempfile.mkdtemp(prefix="series-memory-"))
    now = datetime.now(UTC).replace(microsecond=0)
    memory: dict[str, Any] = {"series": options.series, "points": options.points, "index_bytes_per_series": per_series}
    with started_children() as started:
        mongo, mongo_uri = start_mongo(folder)
        started.append(mongo)
        redis_port = free_port()
        started.append(start_redis(redis_port, folder))
        say(f"filling {options.points:,} points in {options.series:,} series ({mongo.name})")
        memory["fill_seconds"] = round(fill(mongo_uri, options.series, options.points, now - timedelta(seconds=1)), 1)
        memory["storage"] = stored_bytes(mongo_uri, options.points)
        say(f"  {memory['fill_seconds']} s; {memory['storage']['bytes_per_point']} bytes per point stored")
        begun = time.perf_counter()
        server = start_server(mongo_uri, f"redis://{LOOPBACK}:{redis_port}", options.workers, folder / "server", {})
        started.append(server.child)
        memory["ready_ms"] = round((time.perf_counter() - begun) * 1000, 1)
        memory["worker_rss_mb_at_start"] = worker_rss_mb(server.child.pid)
        say(f"server ready in {memory['ready_ms']} ms; worker RSS {memory['worker_rss_mb_at_start']} MB")
        # The index is read on the first request that needs it (SeriesRegistry.refresh): this one pays for it.
        first = time.perf_counter()
        status = http_status(server.port, f"/metrics?{urlencode({'name': series_of(1).name, 'limit': 1})}", 120)
        memory["first_listing"] = {"status": status, "ms": round((time.perf_counter() - first) * 1000, 1)}
        memory["worker_rss_mb_index_loaded"] = worker_rss_mb(server.child.pid)
        say(f"first listing {memory['first_listing']}; worker RSS {memory['worker_rss_mb_index_loaded']} MB")
        say(f"{options.requests:,} requests over random series")
        memory["statuses"] = traffic(server.port, options.series, options.requests)
        rss = worker_rss_mb(server.child.pid)
        memory["worker_rss_mb_each"] = rss
        memory["worker_rss_mb"] = max(rss) if rss else None
        say(f"worker RSS after the requests: {rss} MB")
    return {
        "meta": {
            "started": now.isoformat(timespec="seconds"),
            "command": " ".join(["python", "-m", "bench.series_memory", *sys.argv[1:]]),
            "engine": mongo.name,
        },
        "engine": {"name": mongo.name},
        "runs": [{"workers": options.workers, "memory": memory}],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=FULL_SERIES)
    parser.add_argument("--points", type=int, default=FULL_POINTS)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--requests", type=int, default=2_000)
    options = parser.parse_args()
    results = run(options)
    # The target is stated for 100k series and 10M points: a smaller run is reported, not gated.
    full = options.series >= FULL_SERIES and options.points >= FULL_POINTS
    targets = [t for t in load_targets() if t["path"][0] == "memory"] if full else []
    results["gate"] = evaluate(results, targets)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}-series-memory.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results["runs"][0]["memory"], indent=2))
    failed = print_outcomes(results["gate"]) if full else 0
    if not full:
        print(f"\nsmaller than the target's {FULL_SERIES:,} series and {FULL_POINTS:,} points: not gated")
    print(f"\nresults: {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
