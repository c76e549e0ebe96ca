"""The best GET /metrics hit ratio an exact cache can reach on the mixed workload, dropping or updating on writes.

Simulates the locust mix (bench/locustfile.py) against an infinite cache with no TTL, in two modes:

- *drop*: a write drops exactly the cached listings it can change (its name with its region tag, as the
  server's dependency keys do); a read misses the first time and after any write to its (name, region).
- *update*: a cached newest page is updated in place instead (services/listing_page.py): a new point (a POST,
  or a PUT's new version, stamped now) enters at the top; a point removed from the page (a DELETE, or a PUT's
  old version) is taken up by a spare point, and only a page left with fewer than a page's worth is dropped.
  It holds a page and SPARE_ITEMS more when filled, and gains one with each insert, up to that.

The misses left are answers that really changed, or could not be brought up to date.
Run: `.venv/bin/python -m bench.cache_ceiling [--ops N]`.
"""

from __future__ import annotations

import argparse
import random

from bench.workload import NAMES, PAGE, REGIONS
from telemetry_server.services.listing_page import SPARE_ITEMS

_ZIPF = [1 / (rank**1.2) for rank in range(1, len(NAMES) + 1)]
# Task weights of the mixed workload: filtered GET, POST, PUT, DELETE (prompts do not touch listings).
_TASKS = (("get", 140), ("post", 40), ("put", 5), ("delete", 5))
Series = tuple[str, str]


def ceiling(ops: int, update: bool, seed: int = 1) -> float:
    rng = random.Random(seed)
    held: dict[Series, int] = {}  # cached listings, and how many points each holds
    newest: dict[Series, list[int]] = {}  # the points written during the run, newest first, by series
    owned: list[tuple[Series, int]] = []
    hits = reads = points = 0
    kinds, weights = zip(*_TASKS, strict=True)
    for kind in rng.choices(kinds, weights=weights, k=ops):
        if kind == "get":
            key = (rng.choices(NAMES, weights=_ZIPF)[0], rng.choice(REGIONS[:2]))
            reads += 1
            hits += key in held
            held.setdefault(key, PAGE + SPARE_ITEMS)  # the seed holds far more than that in each series
            continue
        if kind != "post" and not owned:
            kind = "post"  # as the locust user does: nothing of its own to change yet
        if kind != "delete":  # the new point (a POST, or a PUT's new version), stamped now
            new, points = (rng.choice(NAMES), rng.choice(REGIONS)), points + 1
        if kind != "post":  # the point a PUT replaces or a DELETE removes
            series, point = owned.pop(rng.randrange(len(owned)))
            position = newest[series].index(point)
            del newest[series][position]
            if series in held and (not update or position < held[series]):
                held[series] -= 1
                if not update or held[series] < PAGE:
                    del held[series]
        if kind != "delete":
            newest.setdefault(new, []).insert(0, points)
            owned.append((new, points))
            if new in held:
                if update:
                    held[new] = min(held[new] + 1, PAGE + SPARE_ITEMS)
                else:
                    del held[new]
    return hits / reads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ops", type=int, default=28_000, help="requests (28,000: one 60 s run at 500 req/s)")
    args = parser.parse_args()
    print(f"hit-ratio ceilings of an exact cache, {args.ops:,} requests:")
    print(f"  writes drop the listings they change:      {ceiling(args.ops, update=False):.1%}")
    print(f"  writes update the newest pages in place:   {ceiling(args.ops, update=True):.1%}")


if __name__ == "__main__":
    main()
