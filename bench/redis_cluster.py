"""The cost of a Redis Cluster: cached GET and single POST with standalone Redis against a Valkey cluster of
3 primaries and 3 replicas, in one run on the same MongoDB-wire engine.

    .venv/bin/python -m bench.redis_cluster [--duration 5] [--connections 32] [--workers 1] [--rounds 2]

`--rounds 0` times the cache operations alone.

Scenarios (wrk, loopback): `get_cached`, the dashboard listings warmed, mostly answered by the worker's L1;
`get_cached_l2`, the same with the L1 off (`L1_CACHE_TTL_MS=0`), so every answer is one Redis MGET, which is
where a cluster client costs most; `post_single`, one metric per request (a Lua invalidation on Redis each).
Each round runs every scenario on both deployments, alternating which goes first; the median of the rounds is
reported, with the cluster's overhead in req/s and p99. On a shared machine whole-server figures move with
the neighbours' load, so `redis_ops` also times the cache's own operations (a lookup, an invalidation of 13
keys) from one process, in alternating blocks on both deployments: microseconds per operation, the median
block. Prints one JSON document; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson

from bench import workload
from bench.faults import start_mongo, start_redis, start_server
from bench.loadgen import Load, run_wrk
from bench.processes import LOOPBACK, free_port, started_children, stop
from telemetry_server import redis_engines
from telemetry_server.config import Settings
from telemetry_server.storage.redis_cache import RedisCache
from telemetry_server.storage.redis_client import create_redis_client

SCENARIOS = ("get_cached", "get_cached_l2", "post_single")
_BLOCKS, _OPS_PER_BLOCK = 10, 300
# What a single POST invalidates: its name, its tags, and the listing keys they feed (services/cache_dependency.py).
_WRITTEN = [f"t:key{i}" for i in range(13)]


async def time_cache_operations(uris: dict[str, str]) -> dict[str, dict[str, float]]:
    """Microseconds per lookup and per invalidation on each deployment, the median of alternating blocks."""
    caches = {}
    for deployment, uri in uris.items():
        settings = Settings(redis_uri=uri, redis_timeout_ms=2000)
        caches[deployment] = RedisCache(
            create_redis_client(settings), create_redis_client(settings, subscriber=True), "ts:bench-ops", 60
        )
    samples: dict[str, dict[str, list[float]]] = {d: {} for d in uris}

    def record(deployment: str, operation: str, began: tuple[float, float]) -> None:
        # Wall time includes waiting for Redis (and for the CPU, on a busy machine); the client's own CPU time
        # is what the cluster client adds per operation, whatever the neighbours do.
        wall, cpu = time.perf_counter() - began[0], time.process_time() - began[1]
        samples[deployment].setdefault(f"{operation}_us", []).append(wall / _OPS_PER_BLOCK * 1e6)
        samples[deployment].setdefault(f"{operation}_client_cpu_us", []).append(cpu / _OPS_PER_BLOCK * 1e6)

    try:
        for block in range(_BLOCKS):
            order = list(caches) if block % 2 == 0 else list(reversed(caches))
            for deployment in order:
                cache = caches[deployment]
                began = time.perf_counter(), time.process_time()
                for i in range(_OPS_PER_BLOCK):
                    await cache.lookup("n:cpu", f"listing?{i % 32}")
                record(deployment, "lookup", began)
                began = time.perf_counter(), time.process_time()
                for _ in range(_OPS_PER_BLOCK):
                    await cache.invalidate(_WRITTEN)
                record(deployment, "invalidate", began)
    finally:
        for cache in caches.values():
            await cache.aclose()
    return {d: {op: round(statistics.median(values), 1) for op, values in ops.items()} for d, ops in samples.items()}


def warm(port: int) -> None:
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=30)
    try:
        for _ in range(2):
            for path in workload.cached_paths():
                connection.request("GET", path)
                connection.getresponse().read()
    finally:
        connection.close()


def seed(port: int) -> None:
    """A few hundred points, so that the dashboard listings have something to answer."""
    points = workload.points(600, workload.now_utc(), timedelta(seconds=1), seed=7)
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=30)
    try:
        for body in workload.json_batches(points, 200):
            connection.request("POST", "/metrics", body, {"Content-Type": "application/json"})
            answer = connection.getresponse()
            answer.read()
            if answer.status != 201:
                raise RuntimeError(f"seeding: POST /metrics answered {answer.status}")
    finally:
        connection.close()


def measure(
    scenario: str, mongo_uri: str, redis_uri: str, args: argparse.Namespace, folder: Path, files: dict[str, Path]
) -> dict[str, Any]:
    settings = {"LOG_LEVEL": "warning"}
    if scenario == "get_cached_l2":
        settings["L1_CACHE_TTL_MS"] = "0"
    server = start_server(mongo_uri, redis_uri, args.workers, folder, settings)
    try:
        if scenario == "post_single":
            load = Load(
                "post.lua", ("/metrics", "application/json", str(files["single"])), args.connections, 2, args.duration
            )
        else:
            warm(server.port)
            load = Load("get.lua", (str(files["cached"]),), args.connections, 2, args.duration)
        result = run_wrk(server.url, load)
    finally:
        stop(server.child)
    return {key: result[key] for key in ("rps", "p50_ms", "p99_ms", "non_2xx", "socket_errors")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)

    results: dict[str, dict[str, list[dict[str, Any]]]] = {s: {"standalone": [], "cluster": []} for s in SCENARIOS}
    with tempfile.TemporaryDirectory(prefix="bench-redis-cluster-") as tmp, started_children() as children:
        root = Path(tmp)
        files = {
            "cached": workload.write_records(root / "cached.paths", workload.cached_paths()),
            "single": workload.write_records(
                root / "single.json",
                (orjson.dumps(p.to_json()) for p in workload.points(5000, workload.now_utc(), timedelta(0), 3, False)),
            ),
        }
        mongo, mongo_uri = start_mongo(root)
        children.append(mongo)
        redis_port = free_port()
        children.append(start_redis(redis_port, root))
        cluster = redis_engines.start_cluster(root / "cluster")
        try:
            uris = {"standalone": f"redis://{LOOPBACK}:{redis_port}", "cluster": cluster.uri.split(",")[0]}
            seeder = start_server(mongo_uri, uris["standalone"], 1, root / "seed", {})
            seed(seeder.port)
            stop(seeder.child)
            print("cache operations, in process", file=sys.stderr, flush=True)
            operations = asyncio.run(time_cache_operations(uris))
            for round_ in range(args.rounds):
                order = ["standalone", "cluster"] if round_ % 2 == 0 else ["cluster", "standalone"]
                for scenario in SCENARIOS:
                    for deployment in order:
                        print(f"round {round_ + 1}: {scenario} on {deployment}", file=sys.stderr, flush=True)
                        folder = root / f"server-{round_}-{scenario}-{deployment}"
                        measured = measure(scenario, mongo_uri, uris[deployment], args, folder, files)
                        results[scenario][deployment].append(measured)
        finally:
            cluster.stop()

    report: dict[str, Any] = {"settings": vars(args), "load_average": os.getloadavg(), "scenarios": {}}
    report["redis_ops"] = {
        **operations,
        "cluster_change_pct": {
            op: round((operations["cluster"][op] / operations["standalone"][op] - 1) * 100, 1)
            for op in operations["standalone"]
        },
    }
    for scenario, runs in results.items():
        if not runs["standalone"]:  # --rounds 0: the cache operations alone
            continue
        median = {
            deployment: {key: statistics.median(run[key] for run in measured) for key in measured[0]}
            for deployment, measured in runs.items()
        }
        standalone, cluster_ = median["standalone"], median["cluster"]
        report["scenarios"][scenario] = {
            **median,
            "cluster_rps_change_pct": round((cluster_["rps"] / standalone["rps"] - 1) * 100, 1),
            "cluster_p99_change_pct": round((cluster_["p99_ms"] / standalone["p99_ms"] - 1) * 100, 1),
            "runs": runs,
        }
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
