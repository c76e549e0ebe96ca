"""Scale-out: what being distributed costs, in one run. Cached GET, single POST and a short mixed workload
straight to one instance, through HAProxy to that one, and through HAProxy to three (one engine, one Redis);
with the CPU each part spent and the Redis and MongoDB operations per request, for docs/scaling.md.

On a 2-core machine the instances share the cores with the engines, HAProxy and wrk, so three instances are not
faster than one: the run measures the balancer's price (direct vs HAProxy, one instance) and the price of
spreading (one vs three behind it), per request and per CPU-second.

    .venv/bin/python -m bench.scale_out                   # ~2 min; results in bench/results/<stamp>-scale-out.*
    .venv/bin/python -m bench.scale_out --duration 3 --connections 16   # a quicker look
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psutil
import redis
from pymongo import MongoClient

from bench import workload
from bench.engine import choose_engine, start_mongo, start_redis
from bench.loadgen import Load, run_wrk, wrk_available
from bench.processes import Child, scratch_folder, started_children
from bench.seed import post_batches, request
from bench.server import Server, start_server
from tests.balancer import Balancer, haproxy_binary

RESULTS = Path(__file__).resolve().parent / "results"
SCENARIOS = ("get_cached", "post_single", "post_batch", "mixed")
BATCH = 1000  # points per batch POST, as agents send them
BATCH_CONNECTIONS = 8  # as bench/ runs its batch scenarios
MIXED_POST_EVERY = 5  # 80% cached GETs, 20% single POSTs: the seed's read/write mix without PUT and DELETE
SEED_POINTS = 20_000
IDLE_SECONDS = 2.0
SETTLE_SECONDS = 30.0


@dataclass
class Counters:
    """What the shared parts have done so far: Redis commands, MongoDB operations, CPU-seconds per part."""

    redis_calls: dict[str, int]
    mongo_ops: dict[str, int]
    cpu: dict[str, float]

    def since(self, before: Counters) -> dict[str, Any]:
        return {
            "redis": _delta(self.redis_calls, before.redis_calls),
            "mongo": _delta(self.mongo_ops, before.mongo_ops),
            "cpu_s": {part: round(self.cpu[part] - before.cpu.get(part, 0.0), 3) for part in self.cpu},
        }


def _delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before.get(k, 0) for k in after if after[k] - before.get(k, 0)}


@dataclass
class Meters:
    redis: redis.Redis
    mongo: MongoClient[dict[str, Any]]
    parts: dict[str, list[Child]] = field(default_factory=dict)

    def read(self) -> Counters:
        stats = self.redis.info("commandstats")
        calls = {name.removeprefix("cmdstat_"): int(s["calls"]) for name, s in stats.items()}
        ops = self.mongo.admin.command("serverStatus")["opcounters"]
        return Counters(calls, {k: int(v) for k, v in ops.items()}, {p: _cpu(c) for p, c in self.parts.items()})


def _cpu(children: list[Child]) -> float:
    """CPU-seconds of these processes and everything under them (Granian's workers)."""
    total = 0.0
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            top = psutil.Process(child.pid)
            for process in [top, *top.children(recursive=True)]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    times = process.cpu_times()
                    total += times.user + times.system
    return total


@dataclass(frozen=True)
class Files:
    cached_paths: Path
    single_bodies: Path
    batch_bodies: Path


def _loads(files: Files, options: argparse.Namespace) -> dict[str, Load]:
    conns, threads, seconds = options.connections, options.threads, options.duration
    return {
        "get_cached": Load("get.lua", (str(files.cached_paths), str(threads)), conns, threads, seconds),
        "post_single": Load(
            "post.lua", ("/metrics", "application/json", str(files.single_bodies)), conns, threads, seconds
        ),
        "post_batch": Load(
            "post.lua",
            ("/metrics", "application/json", str(files.batch_bodies)),
            BATCH_CONNECTIONS,
            threads,
            seconds,
        ),
        "mixed": Load(
            "mixed.lua",
            (str(files.cached_paths), str(files.single_bodies), str(MIXED_POST_EVERY)),
            conns,
            threads,
            seconds,
        ),
    }


def _settle(meters: Meters) -> None:
    """Wait (30 s at most) until the last scenario's aftermath is over: batch writes leave the engine busy for
    seconds after their answers, and that would be billed to the next scenario."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < deadline:
        before = meters.read()
        time.sleep(0.5)
        used = meters.read().since(before)["cpu_s"]
        if max(used.values()) < 0.5 * 0.1:  # every part under a tenth of a core
            return


def _measure(url: str, load: Load, meters: Meters, idle_rates: dict[str, Any]) -> dict[str, Any]:
    _settle(meters)
    run_wrk(url, Load(load.script, load.args, load.connections, load.threads, 1))  # warm-up, not recorded
    before = meters.read()
    result = run_wrk(url, load)
    used = meters.read().since(before)
    requests = result["requests"] or 1
    seconds = result["duration_s"] or load.duration_s
    # Background work (stats posts, health checks, heartbeats) goes on at its idle rate: taken out.
    redis_busy = sum(used["redis"].values()) - idle_rates["redis_per_s"] * seconds
    mongo_busy = sum(used["mongo"].values()) - idle_rates["mongo_per_s"] * seconds
    cores = {part: round(cpu / seconds, 2) for part, cpu in used["cpu_s"].items()}
    # Per request, CPU time is what distribution costs however busy the machine is (req/s is not: on shared
    # cores every extra process in the path adds its wait for a core to each request's latency).
    cpu_us = {part: round(cpu * 1e6 / requests) for part, cpu in used["cpu_s"].items()}
    return {
        "wrk": result,
        "counters": used,
        "cores": cores,
        "cpu_us_per_request": cpu_us,
        "redis_ops_per_request": round(max(0.0, redis_busy) / requests, 3),
        "mongo_ops_per_request": round(max(0.0, mongo_busy) / requests, 3),
    }


def _idle(meters: Meters) -> dict[str, Any]:
    _settle(meters)
    before = meters.read()
    time.sleep(IDLE_SECONDS)
    used = meters.read().since(before)
    return {
        "redis_per_s": sum(used["redis"].values()) / IDLE_SECONDS,
        "mongo_per_s": sum(used["mongo"].values()) / IDLE_SECONDS,
    }


def _layout(url: str, loads: dict[str, Load], meters: Meters) -> dict[str, Any]:
    _warm(url, workload.cached_paths())
    idle = _idle(meters)
    results: dict[str, Any] = {"idle": idle}
    for name in SCENARIOS:
        results[name] = _measure(url, loads[name], meters, idle)
        wrk = results[name]["wrk"]
        print(
            f"  {name}: {wrk['rps']:,.0f} req/s, p50 {wrk['p50_ms']} ms, p99 {wrk['p99_ms']} ms, "
            f"cores {results[name]['cores']}, redis/req {results[name]['redis_ops_per_request']}, "
            f"mongo/req {results[name]['mongo_ops_per_request']}",
            file=sys.stderr,
        )
    return results


def _warm(url: str, paths: list[str]) -> None:
    port = int(url.rsplit(":", 1)[1])
    for _ in range(3):
        for path in paths:
            request(port, "GET", path)


def run(options: argparse.Namespace) -> dict[str, Any]:
    binary = haproxy_binary()
    if binary is None:
        raise SystemExit("scale_out: HAProxy is not installed (scripts/fleet.sh haproxy installs it)")
    if not wrk_available():
        raise SystemExit("scale_out: wrk is not installed (bench/setup.sh installs it)")
    out: dict[str, Any] = {"options": vars(options), "layouts": {}}
    # Compaction would bill its MongoDB operations to whichever scenario it ran beside (bench/server.py lets
    # the environment override its settings).
    os.environ.setdefault("UPKEEP_PERIOD_SECONDS", "0")
    with scratch_folder("scale-out-", options.keep) as folder, started_children() as children:
        engine = choose_engine(build_timeout=1200)
        mongo_child, mongo_uri = start_mongo(engine, folder)
        redis_child, redis_uri = start_redis(folder)
        children += [mongo_child, redis_child]
        out["engine"] = engine.name
        now = workload.now_utc()
        files = Files(
            workload.write_records(folder / "cached.paths", workload.cached_paths()),
            workload.write_records(
                folder / "single.json",
                (orjson.dumps(p.to_json()) for p in workload.points(512, now, timedelta(0), seed=2, stamped=False)),
            ),
            workload.write_records(
                folder / "batch.json",
                workload.json_batches(
                    # Distinct points in every batch, so that none is a rewrite of one already stored.
                    workload.points(BATCH * 64, now - timedelta(hours=2), timedelta(milliseconds=1), seed=3),
                    BATCH,
                ),
            ),
        )
        loads = _loads(files, options)
        servers: list[Server] = []

        def add_instance() -> Server:
            server, _cold = start_server(mongo_uri, redis_uri, options.workers, folder / f"instance-{len(servers)}")
            children.append(server.child)
            servers.append(server)
            return server

        first = add_instance()
        seed = workload.points(SEED_POINTS, now - timedelta(seconds=2), timedelta(milliseconds=50), seed=1)
        post_batches(first.port, workload.json_batches(seed, 1000))
        meters = Meters(
            redis.Redis.from_url(redis_uri),
            MongoClient(mongo_uri),
            {"mongo": [mongo_child], "redis": [redis_child]},
        )
        layouts: list[tuple[str, int, bool]] = [("direct, 1 instance", 1, False), ("HAProxy, 1 instance", 1, True)]
        layouts.append((f"HAProxy, {options.instances} instances", options.instances, True))
        for index, (label, count, balanced) in enumerate(layouts):
            while len(servers) < count:
                add_instance()
            meters.parts["servers"] = [s.child for s in servers[:count]]
            meters.parts.pop("haproxy", None)
            balancer = None
            try:
                if balanced:
                    balancer = Balancer(binary, [s.port for s in servers[:count]], folder / f"haproxy-{index}")
                    meters.parts["haproxy"] = [Child("haproxy", balancer.process, folder / "haproxy.log")]
                url = balancer.url if balancer is not None else servers[0].url
                print(f"== {label}", file=sys.stderr)
                out["layouts"][label] = _layout(url, loads, meters)
            finally:
                if balancer is not None:
                    balancer.stop()
        meters.redis.close()
        meters.mongo.close()
    return out


def report(out: dict[str, Any]) -> str:
    options = out["options"]
    lines = [
        f"# Scale-out {out['stamp']}",
        "",
        f"- Command: `python -m bench.scale_out --duration {options['duration']} --connections "
        f"{options['connections']} --workers {options['workers']} --instances {options['instances']}`",
        f"- Engine: {out['engine']}; Redis; HAProxy {out['haproxy']}; wrk -t{options['threads']}; "
        f"{psutil.cpu_count()} CPUs shared by everything",
        f"- CPU µs/req: CPU time of each part (all its processes) ÷ requests; ops/req: Redis commands (INFO "
        f"commandstats) and MongoDB operations (serverStatus opcounters), less their idle rate; post_batch sends "
        f"{BATCH} points a request on {BATCH_CONNECTIONS} connections",
        "",
        "| layout | scenario | req/s | P50 ms | P99 ms | errors | CPU µs/req: servers | HAProxy | Redis "
        "| MongoDB | Redis ops/req | MongoDB ops/req |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, results in out["layouts"].items():
        for name in SCENARIOS:
            r = results[name]
            wrk, cpu = r["wrk"], r["cpu_us_per_request"]
            errors = wrk["non_2xx"] + wrk["socket_errors"]
            lines.append(
                f"| {label} | {name} | {wrk['rps']:,.0f} | {wrk['p50_ms']} | {wrk['p99_ms']} | {errors} "
                f"| {cpu['servers']:,} | {cpu.get('haproxy', '—')} | {cpu['redis']} | {cpu['mongo']:,} "
                f"| {r['redis_ops_per_request']} | {r['mongo_ops_per_request']} |"
            )
    lines += ["", "Ratios (same run):", ""]
    direct, one, many = (out["layouts"][label] for label in out["layouts"])
    for name in SCENARIOS:
        balancer = _ratio(one[name]["wrk"]["rps"], direct[name]["wrk"]["rps"])
        spread = _ratio(many[name]["wrk"]["rps"], one[name]["wrk"]["rps"])
        cpu = [sum(layout[name]["cpu_us_per_request"].values()) for layout in (direct, one, many)]
        lines.append(
            f"- {name}: req/s HAProxy ÷ direct {balancer} (P99 {direct[name]['wrk']['p99_ms']} → "
            f"{one[name]['wrk']['p99_ms']} ms), {options['instances']} instances ÷ 1 {spread}; CPU µs per "
            f"request, all parts: direct {cpu[0]:,}, HAProxy {cpu[1]:,}, {options['instances']} instances {cpu[2]:,}"
        )
    return "\n".join(lines) + "\n"


def _ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.2f}x" if denominator else "—"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.scale_out", description=__doc__)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measured scenario (default 5)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--workers", type=int, default=1, help="Granian workers per instance (default 1)")
    parser.add_argument("--instances", type=int, default=3, help="instances of the spread layout (default 3)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (logs, data)")
    return parser


def main(argv: list[str] | None = None) -> int:
    options = _parser().parse_args(argv)
    started = datetime.now(UTC)
    out = run(options)
    out["stamp"] = started.isoformat(timespec="seconds")
    out["haproxy"] = _haproxy_version()
    stem = RESULTS / f"{started.strftime('%Y%m%dT%H%M%SZ')}-scale-out"
    RESULTS.mkdir(exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(out, indent=1) + "\n")
    text = report(out)
    stem.with_suffix(".md").write_text(text)
    print(text)
    print(f"written {stem}.json and .md", file=sys.stderr)
    return 0


def _haproxy_version() -> str:
    import subprocess

    binary = haproxy_binary() or "haproxy"
    first = subprocess.run([binary, "-v"], capture_output=True, text=True, check=False).stdout.splitlines()
    return first[0].split()[2] if first else "?"


if __name__ == "__main__":
    sys.exit(main())
