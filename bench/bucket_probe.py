"""What column buckets would cost and save on the fast engine, beside today's one-document-per-point layout.

Prints one JSON document: per layout, insert_many points/s, bytes per point (collStats data + indexes), newest-50
reads/s, window aggregates/s and id lookups/s. Loopback only, bounded by point counts and --seconds per read test.
The figures ground docs/storage-design.md; they are a measurement, not a gate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import struct
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bson import Binary, ObjectId
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel
from pymongo.asynchronous.collection import AsyncCollection

from bench.engine import ENGINE_SCRIPT
from bench.processes import LOOPBACK, free_port, spawn, stop, wait_for_port
from bench.references import RAW_INDEXES
from bench.workload import HOSTS, NAMES, REGIONS

Doc = dict[str, Any]
T0 = datetime(2026, 1, 1, tzinfo=UTC)
STEP = timedelta(seconds=1)
POINTS_PER_CALL = 1000  # today's batch POST size; a bucket larger than this is one bucket per call
NEWEST = 50
SIZES = (50, 100, 250, 500, 1000, 2000)
ID_VARIANTS_AT = 1000  # the bucket size at which the id and column encodings are compared


@dataclass(frozen=True)
class Layout:
    """One way to store the same points: `ids` is how point ids are kept, `packed` whether columns are bytes."""

    name: str
    bucket: int  # 0: one document per point (today)
    ids: str = "oid"  # oid: ObjectId array; oid_indexed: plus a multikey index; seq: packed uint32 per series
    packed: bool = False


def series_tags(series: int) -> tuple[str, list[str]]:
    return NAMES[series % len(NAMES)], [f"host:{HOSTS[series % len(HOSTS)]}", f"region:{REGIONS[series % 3]}"]


def point_docs(series_count: int, per_series: int) -> list[Doc]:
    """Today's documents, series interleaved as a batch of many series arrives."""
    docs = []
    for i in range(per_series):
        for s in range(series_count):
            name, tags = series_tags(s)
            docs.append({"name": name, "tags": tags, "value": float((i * 7 + s) % 1000), "timestamp": T0 + i * STEP})
    return docs


def bucket_docs(layout: Layout, series_count: int, per_series: int) -> list[Doc]:
    """The same points cut into full buckets of `layout.bucket`, each built whole in memory (no $push)."""
    docs = []
    size = layout.bucket
    for s in range(series_count):
        for first in range(0, per_series, size):
            idx = range(first, min(first + size, per_series))
            ts = [T0 + i * STEP for i in idx]
            values = [float((i * 7 + s) % 1000) for i in idx]
            doc: Doc = {
                "series": s,
                "start": ts[0],
                "end": ts[-1],
                "count": len(values),
                "sum": sum(values),
                "min": min(values),
                "max": max(values),
            }
            if layout.packed:
                millis = [int(t.timestamp() * 1000) for t in ts]
                doc["ts"] = Binary(struct.pack(f"<{len(millis)}q", *millis))
                doc["v"] = Binary(struct.pack(f"<{len(values)}d", *values))
            else:
                doc["ts"], doc["v"] = ts, values
            if layout.ids == "seq":
                doc["ids"] = Binary(struct.pack(f"<{len(values)}I", *idx))
            else:
                doc["ids"] = [ObjectId() for _ in idx]
            docs.append(doc)
    return docs


def indexes(layout: Layout) -> list[IndexModel]:
    if layout.bucket == 0:
        return RAW_INDEXES
    # {series, start} serves listings, windows and (series, time)-encoded id lookups; {end} is the TTL index.
    chosen = [IndexModel([("series", ASCENDING), ("start", DESCENDING)]), IndexModel([("end", ASCENDING)])]
    if layout.ids == "oid_indexed":
        chosen.append(IndexModel([("ids", ASCENDING)]))
    return chosen


async def insert_rate(coll: AsyncCollection[Doc], docs: list[Doc], points_per_doc: int) -> float:
    per_call = max(1, POINTS_PER_CALL // points_per_doc)
    begun = time.perf_counter()
    for first in range(0, len(docs), per_call):
        await coll.insert_many(docs[first : first + per_call], ordered=True)
    return len(docs) * points_per_doc / (time.perf_counter() - begun)


async def ops_rate(op: Callable[[int], Awaitable[None]], seconds: float, max_ops: int) -> float:
    done, begun = 0, time.perf_counter()
    while done < max_ops and time.perf_counter() - begun < seconds:
        await op(done)
        done += 1
    return done / (time.perf_counter() - begun)


def columns(doc: Doc) -> tuple[list[Any], list[float]]:
    if isinstance(doc["v"], bytes):
        n = len(doc["v"]) // 8
        return list(struct.unpack(f"<{n}q", doc["ts"])), list(struct.unpack(f"<{n}d", doc["v"]))
    return doc["ts"], doc["v"]


async def newest(
    coll: AsyncCollection[Doc], layout: Layout, series: int, sliced: bool = False
) -> list[tuple[Any, float]]:
    """The newest NEWEST points of one series: newest buckets first, stopping once the page is full.

    `sliced` asks the engine for only the last NEWEST array elements ($slice), so a big bucket is not decoded whole.
    """
    if layout.bucket == 0:
        name, tags = series_tags(series)
        cursor = coll.find({"name": name, "tags": tags[0]}).sort([("timestamp", -1), ("_id", -1)]).limit(NEWEST)
        return [(d["timestamp"], d["value"]) async for d in cursor]
    page: list[tuple[Any, float]] = []
    wanted = -(-NEWEST // layout.bucket) + 1  # a newest bucket may be partly full
    shown: Doc = {"ts": 1, "v": 1, "ids": 1}
    if sliced:
        shown = {key: {"$slice": -NEWEST} for key in shown}
    cursor = coll.find({"series": series}, shown).sort("start", -1).limit(wanted)
    async for doc in cursor:
        ts, values = columns(doc)
        page.extend(zip(reversed(ts), reversed(values), strict=True))
        if len(page) >= NEWEST:
            break
    return page[:NEWEST]


async def window(coll: AsyncCollection[Doc], layout: Layout, series: int, lo: datetime, hi: datetime) -> tuple:
    """count/sum/min/max over [lo, hi): summaries of whole buckets, points of the (at most two) edge buckets."""
    if layout.bucket == 0:
        name, tags = series_tags(series)
        match = {"name": name, "tags": tags[0], "timestamp": {"$gte": lo, "$lt": hi}}
        group = {"_id": None, "n": {"$sum": 1}, "s": {"$sum": "$value"}, "lo": {"$min": "$value"}}
        rows = await (
            await coll.aggregate([{"$match": match}, {"$group": group | {"hi": {"$max": "$value"}}}])
        ).to_list()
        return (rows[0]["n"], rows[0]["s"], rows[0]["lo"], rows[0]["hi"]) if rows else ()
    n, total, low, high = 0, 0.0, float("inf"), float("-inf")
    summary = {"start": 1, "end": 1, "count": 1, "sum": 1, "min": 1, "max": 1}
    edges = []
    async for doc in coll.find({"series": series, "start": {"$lt": hi}, "end": {"$gte": lo}}, summary):
        if doc["start"] >= lo and doc["end"] < hi:
            n, total = n + doc["count"], total + doc["sum"]
            low, high = min(low, doc["min"]), max(high, doc["max"])
        else:
            edges.append(doc["_id"])
    lo_key, hi_key = (lo, hi) if not layout.packed else (lo.timestamp() * 1000, hi.timestamp() * 1000)
    async for doc in coll.find({"_id": {"$in": edges}}, {"ts": 1, "v": 1}):
        inside = [v for t, v in zip(*columns(doc), strict=True) if lo_key <= t < hi_key]
        if inside:
            n, total = n + len(inside), total + sum(inside)
            low, high = min(low, *inside), max(high, *inside)
    return n, total, low, high


async def coll_bytes(coll: AsyncCollection[Doc]) -> Doc:
    stats = await coll.database.command("collStats", coll.name)
    keep = ("count", "size", "storageSize", "totalIndexSize", "indexSizes")
    return {key: stats.get(key) for key in keep}


async def measure(client: AsyncMongoClient[Doc], layout: Layout, args: argparse.Namespace) -> Doc:
    db = client["bucket_probe"]
    coll = db[layout.name]
    await coll.drop()
    await coll.create_indexes(indexes(layout))
    per_doc = 1 if layout.bucket == 0 else layout.bucket
    if layout.bucket == 0:
        docs = point_docs(args.series, args.per_series)
    else:
        docs = bucket_docs(layout, args.series, args.per_series)
    points = args.series * args.per_series
    out: Doc = {"layout": layout.name, "bucket": layout.bucket, "ids": layout.ids, "packed": layout.packed}
    out["insert_points_s"] = round(await insert_rate(coll, docs, per_doc))
    stats = await coll_bytes(coll)
    out["bytes_per_point"] = round(((stats["size"] or 0) + (stats["totalIndexSize"] or 0)) / points, 1)
    out["data_bytes_per_point"] = round((stats["size"] or 0) / points, 1)
    out["index_bytes_per_point"] = {k: round(v / points, 1) for k, v in (stats["indexSizes"] or {}).items()}
    out["storage_bytes_per_point"] = round(((stats["storageSize"] or 0) + (stats["totalIndexSize"] or 0)) / points, 1)
    rng = random.Random(7)

    async def read_newest(_: int) -> None:
        page = await newest(coll, layout, rng.randrange(args.series))
        assert len(page) == NEWEST, len(page)

    async def read_newest_sliced(_: int) -> None:
        page = await newest(coll, layout, rng.randrange(args.series), sliced=True)
        assert len(page) == NEWEST, len(page)

    span = args.per_series

    async def aggregate(_: int) -> None:
        s = rng.randrange(args.series)
        first = rng.randrange(span // 4)
        lo, hi = T0 + first * STEP, T0 + (first + span // 2) * STEP
        result = await window(coll, layout, s, lo, hi)
        assert result, "empty window"
        assert result[0] == span // 2, result

    out["newest50_s"] = round(await ops_rate(read_newest, args.seconds, 20_000))
    if layout.bucket and not layout.packed:
        out["newest50_sliced_s"] = round(await ops_rate(read_newest_sliced, args.seconds, 20_000))
    out["window_aggregate_s"] = round(await ops_rate(aggregate, args.seconds, 20_000))
    out["window_points"] = span // 2
    if layout.bucket == 0 or layout.ids in ("oid_indexed", "seq"):
        out["get_by_id_s"] = round(await ops_rate(await id_lookup(coll, layout, rng), args.seconds, 20_000))
    await coll.drop()
    return out


async def id_lookup(coll: AsyncCollection[Doc], layout: Layout, rng: random.Random) -> Callable[[int], Awaitable[None]]:
    """GET /metrics/{id}: by _id today, by the ids multikey index, or by (series, time) through {series, start}."""
    sample = await coll.find({}, {"ids": 1, "series": 1, "start": 1}).limit(200).to_list()

    async def by_id(_: int) -> None:
        doc = rng.choice(sample)
        if layout.bucket == 0:
            assert await coll.find_one({"_id": doc["_id"]})
        elif layout.ids == "oid_indexed":
            wanted = rng.choice(doc["ids"])
            found = await coll.find_one({"ids": wanted}, {"ts": 1, "v": 1, "ids": 1})
            assert found is not None
            assert wanted in found["ids"]
        else:  # id = (series, timestamp, seq): the bucket holding that time, then the seq among its points
            n = len(doc["ids"]) // 4
            k = rng.randrange(n)
            seq, at = struct.unpack(f"<{n}I", doc["ids"])[k], doc["start"] + k * STEP
            query = {"series": doc["series"], "start": {"$lte": at}}
            found = await coll.find_one(query, {"ts": 1, "v": 1, "ids": 1}, sort=[("start", -1)])
            assert found is not None
            assert seq in struct.unpack(f"<{n}I", found["ids"])

    return by_id


async def redirect_bytes(client: AsyncMongoClient[Doc], points: int) -> Doc:
    """What keeping every migrated 24-hex id resolvable costs: one {_id: old ObjectId, b: bucket, i} row each."""
    coll = client["bucket_probe"]["legacy_ids"]
    await coll.drop()
    bucket_ids = [ObjectId() for _ in range(points // 1000 + 1)]
    docs = [{"_id": ObjectId(), "b": bucket_ids[i // 1000], "i": i % 1000} for i in range(points)]
    rate = await insert_rate(coll, docs, 1)
    stats = await coll_bytes(coll)
    await coll.drop()
    return {"insert_rows_s": round(rate), "bytes_per_id": round((stats["size"] + stats["totalIndexSize"]) / points, 1)}


async def run(uri: str, args: argparse.Namespace) -> Doc:
    client: AsyncMongoClient[Doc] = AsyncMongoClient(uri, tz_aware=True)
    try:
        layouts = [Layout("points", 0)] + [Layout(f"b{size}", size) for size in args.sizes]
        b = ID_VARIANTS_AT
        layouts += [
            Layout(f"b{b}_oid_indexed", b, ids="oid_indexed"),
            Layout(f"b{b}_seq", b, ids="seq"),
            Layout(f"b{b}_packed_seq", b, ids="seq", packed=True),
        ]
        results = []
        for layout in layouts:
            print(f"bucket_probe: {layout.name}", file=sys.stderr)
            results.append(await measure(client, layout, args))
        return {"layouts": results, "legacy_redirect": await redirect_bytes(client, args.series * args.per_series)}
    finally:
        await client.close()


def with_engine(sync_on_commit: bool, args: argparse.Namespace, folder: Path) -> Doc:
    port = free_port()
    data = folder / f"engine-sync{int(sync_on_commit)}"
    env = os.environ | {"ENGINE_SYNC_ON_COMMIT": "1" if sync_on_commit else "0"}
    command = ["bash", str(ENGINE_SCRIPT), "start", str(port), str(data)]
    child = spawn("secantus-mdb", command, folder / f"engine-sync{int(sync_on_commit)}.log", env=env)
    try:
        wait_for_port(child, port, timeout=60)
        return asyncio.run(run(f"mongodb://{LOOPBACK}:{port}", args))
    finally:
        stop(child)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--series", type=int, default=50)
    parser.add_argument("--per-series", type=int, default=2000, help="points per series (multiple of every size)")
    parser.add_argument("--seconds", type=float, default=2.0, help="per read test")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--sync", choices=("on", "off", "both"), default="both")
    args = parser.parse_args()
    modes = {"on": [True], "off": [False], "both": [True, False]}[args.sync]
    report: Doc = {"series": args.series, "points": args.series * args.per_series, "newest": NEWEST}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bucket-probe-") as tmp:
        for sync in modes:
            report[f"sync_on_commit_{'on' if sync else 'off'}"] = with_engine(sync, args, Path(tmp))
    report["load_average"] = [round(load_before, 1), round(os.getloadavg()[0], 1)]
    print(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
