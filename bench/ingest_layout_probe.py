"""What a 1,000-series batch costs the engine: 1,000 one-point buckets against one multi-series document.

    .venv/bin/python -m bench.ingest_layout_probe mongodb://127.0.0.1:PORT/ [--rounds 10]

A batch that holds one point of each of 1,000 series (the bench's batch POST) becomes 1,000 one-point buckets in
the per-series layout; this measures that insert, with the bucket collection's two indexes, beside the insert of
one document holding the same 1,000 points (packed columns plus a multikey array of its series ids, indexed the
same way), and a `$in` find of three series over the multikey index. Prints JSON; drops its database at the end.
Loopback only, bounded by --rounds (docs/storage-design.md, "What bounds batch ingest").
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import UTC, datetime

from pymongo import ASCENDING, DESCENDING, MongoClient

DB_NAME = "ingest_layout_probe"
SERIES = 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("uri")
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    client: MongoClient = MongoClient(args.uri, serverSelectionTimeoutMS=5000, tz_aware=True)
    db = client[DB_NAME]
    client.drop_database(DB_NAME)
    try:
        for name in ("single", "multi"):
            db[name].create_index([("series", ASCENDING), ("end", DESCENDING)])
            db[name].create_index([("end", DESCENDING)])
        now = datetime.now(UTC)
        summary = {"start": now, "end": now, "count": 1, "sum": 1.0, "min": 1.0, "max": 1.0, "rev": 0}
        one_point = {"ts": b"\0" * 8, "v": b"\0" * 8, "seq": b"\0" * 8}
        begun = time.perf_counter()
        for round_ in range(args.rounds):
            first = round_ * 100_000
            db.single.insert_many([{"series": first + s, **summary, **one_point} for s in range(SERIES)])
        single_ms = (time.perf_counter() - begun) / args.rounds * 1000
        begun = time.perf_counter()
        for round_ in range(args.rounds):
            first = round_ * 100_000
            columns = {"ts": os.urandom(8 * SERIES), "v": os.urandom(8 * SERIES), "seq": os.urandom(8 * SERIES)}
            db.multi.insert_one({**summary, "count": SERIES, "series": list(range(first, first + SERIES)), **columns})
        multi_ms = (time.perf_counter() - begun) / args.rounds * 1000
        begun = time.perf_counter()
        for _ in range(20):
            list(db.multi.find({"series": {"$in": [5, 100_007, 300_999]}}, {"_id": 1}))
        find_ms = (time.perf_counter() - begun) / 20 * 1000
    finally:
        client.drop_database(DB_NAME)
    print(
        json.dumps(
            {
                "one_point_buckets_insert_ms_per_1000": round(single_ms, 1),
                "multi_series_document_insert_ms_per_1000": round(multi_ms, 1),
                "multikey_in_find_ms": round(find_ms, 2),
                "load_average": os.getloadavg()[0],
            }
        )
    )


if __name__ == "__main__":
    main()
