"""Recovery from a long Redis outage: how long until listings are cached again after Redis comes back with a
backlog of invalidations, and the workers' memory before, during and after.

    .venv/bin/python -m bench.redis_outage [--metrics 50000] [--workers 2] [--max-wait 120]

Redis is stopped, `--metrics` metrics are written in batches of 1,000, each with a tag of its own (two cache
keys each: 100k invalidations for 50k metrics), Redis is started again, and from then on one listing GET and
one single POST alternate on fresh connections. Recovered: the first of 20 listings in a row answered from the
cache. The listing is of another name, with one metric: its query costs the engine nothing, so what is
measured is the cache coming back, not how long the engine takes to list 50k metrics once the cache is
dropped. The L1 is off (`L1_CACHE_TTL_MS=0`): a hit then is a Redis hit, which only comes once the worker
reads from Redis again (an L1 hit would say nothing about Redis). Loopback only, bounded by `--max-wait`.
Prints one JSON document; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench.faults import percentile, start_mongo, start_redis, start_server, timed, worker_rss_mb
from bench.processes import free_port, started_children, stop

NAME = "outage.cpu"
PROBE = "outage.probe"
LISTING = f"/metrics?name={PROBE}&limit=10"
HITS_IN_A_ROW = 20


def say(message: str) -> None:
    print(f"[redis_outage] {message}", file=sys.stderr, flush=True)


def sample(port: int, requests: int) -> dict[str, float]:
    """Listing GETs and single POSTs, alternating: P50/P99 of each and the share of cache hits."""
    gets, posts, hits = [], [], 0
    for i in range(requests):
        _, ms, headers = timed(port, "GET", LISTING)
        gets.append(ms)
        hits += headers.get("x-cache") == "hit"
        _, ms, _ = timed(port, "POST", "/metrics", orjson.dumps({"name": "outage.other", "value": i}))
        posts.append(ms)
    return {
        "get_p50_ms": percentile(gets, 0.5),
        "get_p99_ms": percentile(gets, 0.99),
        "post_p50_ms": percentile(posts, 0.5),
        "post_p99_ms": percentile(posts, 0.99),
        "get_hit_share": round(hits / requests, 2),
    }


def write_during_outage(port: int, metrics: int) -> float:
    started = time.perf_counter()
    for start in range(0, metrics, 1000):
        batch = [{"name": NAME, "tags": [f"id:{i}"], "value": i} for i in range(start, min(metrics, start + 1000))]
        status, _, _ = timed(port, "POST", "/metrics", orjson.dumps(batch))
        if status != 201:
            raise RuntimeError(f"a batch written while Redis was down answered {status}")
    return time.perf_counter() - started


def recover(port: int, max_wait: float) -> dict[str, Any]:
    """Alternate listing GETs and single POSTs until HITS_IN_A_ROW listings in a row are cache hits."""
    started = time.perf_counter()
    gets: list[float] = []
    posts: list[float] = []
    in_a_row, first_of_run = 0, None
    while time.perf_counter() - started < max_wait:
        _, ms, headers = timed(port, "GET", LISTING)
        gets.append(ms)
        if headers.get("x-cache") == "hit":
            first_of_run = first_of_run if in_a_row else time.perf_counter() - started
            in_a_row += 1
            if in_a_row == HITS_IN_A_ROW:
                break
        else:
            in_a_row = 0
        _, ms, _ = timed(port, "POST", "/metrics", orjson.dumps({"name": "outage.other", "value": 1}))
        posts.append(ms)
    recovered = in_a_row == HITS_IN_A_ROW
    return {
        "recovered": recovered,
        "recovery_s": round(first_of_run, 2) if recovered and first_of_run is not None else None,
        "gave_up_after_s": None if recovered else max_wait,
        "while_recovering": {
            "gets": len(gets),
            "get_p50_ms": percentile(gets, 0.5),
            "get_max_ms": round(max(gets), 1) if gets else None,
            "post_p50_ms": percentile(posts, 0.5),
            "post_max_ms": round(max(posts), 1) if posts else None,
        },
    }


def run(metrics: int, workers: int, max_wait: float) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="redis-outage-"))
    with started_children() as started:
        mongo, mongo_uri = start_mongo(folder)
        started.append(mongo)
        redis_port = free_port()
        redis = start_redis(redis_port, folder)
        started.append(redis)
        no_l1 = {"L1_CACHE_TTL_MS": "0"}
        server = start_server(mongo_uri, f"redis://127.0.0.1:{redis_port}", workers, folder / "server", no_l1)
        started.append(server.child)
        port, pid = server.port, server.child.pid
        timed(port, "POST", "/metrics", orjson.dumps({"name": PROBE, "value": 0}))
        say(f"server on {server.url}, {mongo.name}; baseline")
        baseline = sample(port, 200)
        rss_before = worker_rss_mb(pid)

        stop(redis)
        say(f"Redis stopped; writing {metrics} metrics with a tag each")
        write_s = write_during_outage(port, metrics)
        rss_outage = worker_rss_mb(pid)

        redis = start_redis(redis_port, folder)
        started.append(redis)
        say("Redis started again; waiting for the cache to serve again")
        recovery = recover(port, max_wait)
        rss_recovered = worker_rss_mb(pid)
        time.sleep(5)
        after = sample(port, 200)
        rss_after = worker_rss_mb(pid)
    return {
        "metrics_written_while_down": metrics,
        "invalidations_held_at_most": 2 * metrics + 2,
        "workers": workers,
        "write_s": round(write_s, 1),
        "baseline": baseline,
        **recovery,
        "five_s_after_recovery": after,
        "worker_rss_mb": {
            "before": rss_before,
            "redis_down_after_writes": rss_outage,
            "at_recovery": rss_recovered,
            "after": rss_after,
            "sum_before": round(statistics.fsum(rss_before), 1),
            "sum_after": round(statistics.fsum(rss_after), 1),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metrics", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-wait", type=float, default=120.0)
    options = parser.parse_args()
    print(orjson.dumps(run(options.metrics, options.workers, options.max_wait), option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
