"""Measure a MongoDB-wire server's speed and aggregation support with pymongo (bounded, loopback)."""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, MongoClient
from pymongo.collection import Collection

DB_NAME = "engine_probe"
NAMES = [f"sensor-{i:03d}" for i in range(200)]
TAGS = [f"t{i:02d}" for i in range(20)]
T0 = datetime(2026, 1, 1, tzinfo=UTC)
SEED_DOCS = 20_000
BATCH = 1000


def make_doc(i: int, rng: random.Random) -> dict[str, Any]:
    """Return one telemetry document; i spreads timestamps one second apart."""
    return {
        "name": rng.choice(NAMES),
        "tags": rng.sample(TAGS, 3),
        "value": rng.random() * 100,
        "timestamp": T0 + timedelta(seconds=i),
    }


def rate(op: Callable[[int], int], max_ops: int, max_secs: float) -> float:
    """Run op(i) until max_ops units or max_secs elapse; op returns units done; return units/s."""
    done = 0
    i = 0
    start = time.perf_counter()
    while done < max_ops and time.perf_counter() - start < max_secs:
        done += op(i)
        i += 1
    return done / (time.perf_counter() - start)


def measure(coll: Collection, max_ops: int, max_secs: float) -> dict[str, float]:
    """Return ops/s (docs/s for insert_many) for writes, finds, updates and deletes."""
    rng = random.Random(42)
    out: dict[str, float] = {}

    def insert_many(i: int) -> int:
        coll.insert_many([make_doc(i * BATCH + j, rng) for j in range(BATCH)], ordered=False)
        return BATCH

    out["insert_many_docs_s"] = rate(insert_many, SEED_DOCS, max_secs)
    seeded = coll.estimated_document_count()
    if seeded < SEED_DOCS:
        for k in range(seeded, SEED_DOCS, BATCH):
            insert_many(k // BATCH)
    seeded = coll.estimated_document_count()
    coll.create_index([("name", ASCENDING), ("timestamp", DESCENDING)])
    coll.create_index([("tags", ASCENDING), ("timestamp", DESCENDING)])
    coll.create_index([("timestamp", DESCENDING)])

    def insert_one(i: int) -> int:
        coll.insert_one(make_doc(seeded + i, rng))
        return 1

    out["insert_one_s"] = rate(insert_one, max_ops, max_secs)

    def find_name(i: int) -> int:
        list(coll.find({"name": NAMES[i % len(NAMES)]}).sort("timestamp", -1).limit(50))
        return 1

    def find_tags(i: int) -> int:
        pair = [TAGS[i % len(TAGS)], TAGS[(i + 7) % len(TAGS)]]
        list(coll.find({"tags": {"$all": pair}}).sort("timestamp", -1).limit(50))
        return 1

    def find_range(i: int) -> int:
        lo = T0 + timedelta(seconds=(i * 97) % SEED_DOCS)
        query = {"timestamp": {"$gte": lo, "$lt": lo + timedelta(hours=1)}}
        list(coll.find(query).sort("timestamp", -1).limit(50))
        return 1

    out["find_name_s"] = rate(find_name, max_ops, max_secs)
    out["find_tags_all_s"] = rate(find_tags, max_ops, max_secs)
    out["find_range_s"] = rate(find_range, max_ops, max_secs)

    ids = [d["_id"] for d in coll.find({}, {"_id": 1}).limit(max_ops)]

    def find_id(i: int) -> int:
        coll.find_one({"_id": ids[i % len(ids)]})
        return 1

    def update_one(i: int) -> int:
        coll.update_one({"_id": ids[i % len(ids)]}, {"$set": {"value": float(i)}})
        return 1

    def replace_one(i: int) -> int:
        coll.replace_one({"_id": ids[i % len(ids)]}, make_doc(i, rng))
        return 1

    def delete_one(i: int) -> int:
        if i >= len(ids):
            return max_ops
        coll.delete_one({"_id": ids[i]})
        return 1

    out["find_one_id_s"] = rate(find_id, max_ops, max_secs)
    out["update_one_s"] = rate(update_one, max_ops, max_secs)
    out["replace_one_s"] = rate(replace_one, max_ops, max_secs)
    out["delete_one_s"] = rate(delete_one, max_ops, max_secs)
    return out


GROUP_ACC = {
    "$avg": {"$avg": "$value"},
    "$sum": {"$sum": "$value"},
    "$min": {"$min": "$value"},
    "$max": {"$max": "$value"},
    "$count": {"$count": {}},
}

PIPELINES: dict[str, list[dict[str, Any]]] = {
    **{f"$group {k}": [{"$group": {"_id": "$name", "a": acc}}] for k, acc in GROUP_ACC.items()},
    "$percentile": [
        {
            "$group": {
                "_id": None,
                "p": {"$percentile": {"input": "$value", "p": [0.5, 0.99], "method": "approximate"}},
            }
        }
    ],
    "$median": [{"$group": {"_id": None, "m": {"$median": {"input": "$value", "method": "approximate"}}}}],
    "$dateTrunc": [
        {"$project": {"m": {"$dateTrunc": {"date": "$timestamp", "unit": "minute"}}}},
        {"$limit": 5},
    ],
    "$topN": [{"$group": {"_id": "$name", "top": {"$topN": {"n": 3, "sortBy": {"value": -1}, "output": "$value"}}}}],
    "$sort+$limit": [{"$sort": {"timestamp": -1}}, {"$limit": 5}],
    "$bucketAuto": [{"$bucketAuto": {"groupBy": "$value", "buckets": 4}}],
    "$facet": [{"$facet": {"n": [{"$count": "n"}], "top": [{"$sort": {"value": -1}}, {"$limit": 1}]}}],
    "$setWindowFields": [
        {"$limit": 100},
        {
            "$setWindowFields": {
                "partitionBy": "$name",
                "sortBy": {"timestamp": 1},
                "output": {"s": {"$sum": "$value", "window": {"documents": ["unbounded", "current"]}}},
            }
        },
    ],
    "$toLong(date)": [{"$project": {"ms": {"$toLong": "$timestamp"}}}, {"$limit": 5}],
    "$dateToString": [
        {"$project": {"s": {"$dateToString": {"date": "$timestamp", "format": "%Y-%m-%dT%H:%M"}}}},
        {"$limit": 5},
    ],
}


def probe_operators(coll: Collection) -> dict[str, str]:
    """Run each pipeline on a small sample collection; return 'ok' or the error text."""
    result: dict[str, str] = {}
    for name, pipeline in PIPELINES.items():
        try:
            docs = list(coll.aggregate(pipeline, allowDiskUse=False))
            result[name] = "ok" if docs else "empty"
        except Exception as exc:
            result[name] = f"{type(exc).__name__}: {str(exc)[:120]}"
    return result


def probe_compat(client: MongoClient, coll: Collection) -> dict[str, str]:
    """Check hello, ObjectId round trip, compound index listing, $all and sessions."""
    out: dict[str, str] = {}
    hello = client.admin.command("hello")
    out["hello"] = f"maxWireVersion={hello.get('maxWireVersion')}"
    out["version"] = str(client.server_info().get("version"))
    oid = ObjectId()
    coll.insert_one({"_id": oid, "name": "rt", "tags": ["x", "y"], "value": 1.0, "timestamp": T0})
    back = coll.find_one({"_id": oid})
    same = back is not None and isinstance(back["_id"], ObjectId) and back["_id"] == oid
    out["objectid_roundtrip"] = "ok" if same else "FAIL"
    got = coll.find_one({"tags": {"$all": ["y", "x"]}, "name": "rt"})
    out["all_on_array"] = "ok" if got else "FAIL"
    keys = [dict(ix["key"]) for ix in coll.list_indexes()]
    out["compound_index"] = "ok" if {"name": 1, "timestamp": -1} in keys else f"FAIL {keys}"
    try:
        with client.start_session() as s:
            coll.find_one({"_id": oid}, session=s)
        out["sessions"] = "ok"
    except Exception as exc:
        out["sessions"] = f"{type(exc).__name__}: {str(exc)[:80]}"
    coll.delete_one({"_id": oid})
    return out


def main() -> int:
    """Parse arguments, run the probe, print a Markdown row or JSON."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("uri", nargs="?", default="mongodb://127.0.0.1:27017/")
    ap.add_argument("--label", default="engine")
    ap.add_argument("--max-ops", type=int, default=2000, help="op cap per measurement")
    ap.add_argument("--max-secs", type=float, default=5.0, help="time cap per measurement")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    client: MongoClient = MongoClient(args.uri, serverSelectionTimeoutMS=5000, tz_aware=True)
    client.drop_database(DB_NAME)
    coll = client[DB_NAME]["readings"]
    try:
        figures = measure(coll, args.max_ops, args.max_secs)
        compat = probe_compat(client, coll)
        operators = probe_operators(coll)
    finally:
        client.drop_database(DB_NAME)
        client.close()

    if args.json:
        report = {"label": args.label, **figures, "compat": compat, "operators": operators}
        print(json.dumps(report, indent=2))
        return 0
    failing = [k for k, v in operators.items() if v != "ok"]
    cells = [args.label, *(f"{v:,.0f}" for v in figures.values()), ", ".join(failing) or "none"]
    print("| engine | " + " | ".join(figures) + " | failing operators |")
    print("|" + "---|" * len(cells))
    print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
