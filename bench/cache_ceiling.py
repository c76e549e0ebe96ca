"""The best GET /metrics hit ratio any exactly-invalidated cache can reach on the mixed workload.

Simulates the locust mix (bench/locustfile.py) against an infinite cache with no TTL, where a write drops
exactly the cached listings it can change (its name with its region tag, as the server's dependency keys
do). A read misses only the first time and after a write to its (name, region): the misses left are
answers that really changed. Run: `.venv/bin/python -m bench.cache_ceiling [--ops N]`.
"""

from __future__ import annotations

import argparse
import random

from bench.workload import NAMES, REGIONS

_ZIPF = [1 / (rank**1.2) for rank in range(1, len(NAMES) + 1)]
# Task weights of the mixed workload: filtered GET, POST, PUT, DELETE (prompts do not touch listings).
_TASKS = (("get", 140), ("post", 40), ("put", 5), ("delete", 5))


def ceiling(ops: int, seed: int = 1) -> float:
    rng = random.Random(seed)
    fresh: set[tuple[str, str]] = set()  # listings cached and still correct
    owned: list[tuple[str, str]] = []
    hits = reads = 0
    kinds, weights = zip(*_TASKS, strict=True)
    for kind in rng.choices(kinds, weights=weights, k=ops):
        if kind == "get":
            key = (rng.choices(NAMES, weights=_ZIPF)[0], rng.choice(REGIONS[:2]))
            reads += 1
            hits += key in fresh
            fresh.add(key)
            continue
        if kind != "post" and not owned:
            kind = "post"  # as the locust user does: nothing of its own to change yet
        written = []
        if kind != "delete":  # the new metric (a POST, or a PUT's new version)
            written.append((rng.choice(NAMES), rng.choice(REGIONS)))
        if kind != "post":  # the metric a PUT replaces or a DELETE removes
            written.append(owned.pop(rng.randrange(len(owned))))
        if kind != "delete":
            owned.append(written[0])
        fresh.difference_update(written)
    return hits / reads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ops", type=int, default=28_000, help="requests (28,000: one 60 s run at 500 req/s)")
    args = parser.parse_args()
    print(f"hit-ratio ceiling of exact invalidation, {args.ops:,} requests: {ceiling(args.ops):.1%}")


if __name__ == "__main__":
    main()
