"""One benchmark run: engines, references, our server per worker count, the mixed workload, peers, results."""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from bench import peers, workload
from bench.engine import choose_engine, start_mongo, start_redis
from bench.loadgen import Load, LoadError, run_wrk, wrk_available
from bench.mixed import run_mixed
from bench.processes import http_status, started_children, stop
from bench.references import measure_hello, measure_insert_many
from bench.scenarios import Files, Reference, Scenario, Target, build_scenarios
from bench.seed import post_batches, request, write_lines
from bench.server import Server, start_server
from bench.storage_stats import compact, stored_bytes

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
SHARED_CPU_NOTE = (
    "Loopback only; wrk/locust share the machine's cores with the server and its engines, so absolute figures "
    "vary run to run (±10-30%); compare the ratios measured in this run."
)


# A warm-up would spend what these scenarios need fresh: uncached keys (they would be cached) and delete ids.
_NO_WARMUP = frozenset({"get_uncached", "top_events_uncached", "delete"})


@dataclass(frozen=True)
class Options:
    quick: bool
    duration_s: float
    warmup_s: float
    workers: tuple[int, ...]
    connections: int
    batch_connections: int
    batch_size: int
    threads: int
    seed_docs: int
    delete_pool: int
    cold_starts: int
    mixed_users: int
    mixed_duration_s: float
    mixed_rate: float  # requests per second across all users; 0: closed loop, as fast as answers come
    insert_many_s: float
    engine_build_timeout_s: float
    scenarios: frozenset[str]
    keep: bool = False

    def wants(self, name: str) -> bool:
        return not self.scenarios or name in self.scenarios


@dataclass
class Progress:
    """Progress lines on stderr with the time since the run began."""

    begun: float = field(default_factory=time.monotonic)

    def say(self, message: str) -> None:
        print(f"[{time.monotonic() - self.begun:6.1f}s] {message}", file=sys.stderr, flush=True)


def _scenarios(files: Files, options: Options) -> list[Scenario]:
    return build_scenarios(
        files, options.duration_s, options.connections, options.batch_connections, options.batch_size, options.threads
    )


def run(options: Options) -> dict[str, Any]:
    progress = Progress()
    if not wrk_available():
        raise SystemExit("wrk is not installed: run bench/setup.sh (apt-get install -y wrk influxdb)")
    folder = Path(tempfile.mkdtemp(prefix="telemetry-bench-"))
    progress.say(f"working folder {folder}")
    results: dict[str, Any] = {"meta": _meta(options), "runs": [], "peers": {}}
    try:
        with started_children() as children:
            engine = choose_engine(options.engine_build_timeout_s)
            progress.say(f"MongoDB-wire engine: {engine.name} ({engine.note})")
            results["engine"] = {
                "name": engine.name,
                "fast": engine.fast,
                "how": engine.note,
                "template": engine.template,
            }
            mongo, mongo_uri = start_mongo(engine, folder / "engines")
            children.append(mongo)
            redis, redis_uri = start_redis(folder / "engines")
            children.append(redis)
            progress.say(f"engines up: {mongo_uri} {redis_uri}")

            progress.say(f"reference: raw insert_many, batches of {options.batch_size}, {options.insert_many_s:g} s")
            insert_many = measure_insert_many(mongo_uri, options.batch_size, options.insert_many_s, 2_000_000)
            results["references"] = {"insert_many": insert_many}
            progress.say(f"  insert_many: {insert_many['docs_per_s']:,.0f} docs/s")

            data = _prepare(folder / "data", options)
            for index, workers in enumerate(options.workers):
                results["runs"].append(
                    _run_server(
                        options,
                        progress,
                        folder / f"run-{workers}w",
                        data,
                        mongo_uri,
                        redis_uri,
                        workers,
                        index == 0,
                        insert_many,
                    )
                )
            for later in results["runs"][1:]:  # the same data: measured once, after the seed
                later["storage"] = results["runs"][0].get("storage")
            results["peers"]["influxdb"] = _run_influx(options, progress, folder / "influxdb", data, results)
    finally:
        results["meta"]["load_average_after"] = _load_average()
        if options.keep:
            progress.say(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    return results


@dataclass
class Data:
    folder: Path
    seed_points: list[workload.Point]
    single_points: list[workload.Point]
    batch_points: list[workload.Point]
    now: datetime


def _prepare(folder: Path, options: Options) -> Data:
    folder.mkdir(parents=True, exist_ok=True)
    now = workload.now_utc()
    seed = workload.points(options.seed_docs, now - timedelta(seconds=2), timedelta(milliseconds=50), seed=1)
    single = workload.points(512, now, timedelta(0), seed=2, stamped=False)
    batch = workload.points(options.batch_size * 8, now - timedelta(hours=2), timedelta(milliseconds=1), seed=3)
    data = Data(folder, seed, single, batch, now)
    workload.write_records(folder / "cached.paths", workload.cached_paths())
    workload.write_records(folder / "uncached.paths", workload.uncached_paths(50_000, now))
    top_events = workload.top_events_paths(50_000, seed[0].timestamp or now, now)
    workload.write_records(folder / "top_events.paths", top_events)
    workload.write_records(folder / "single.json", (orjson.dumps(p.to_json()) for p in single))
    workload.write_records(folder / "batch.json", workload.json_batches(batch, options.batch_size))
    by_series = workload.series_points(options.batch_size * 8, 100, now - timedelta(hours=3), seed=4)
    workload.write_records(folder / "batch_series.json", workload.json_batches(by_series, options.batch_size))
    workload.write_records(folder / "put.json", workload.put_bodies(64, now))
    workload.write_records(folder / "single.lines", (p.to_line() for p in single))
    workload.write_records(folder / "batch.lines", workload.line_batches(batch, options.batch_size))
    workload.write_records(folder / "influx.paths", workload.influx_query_paths(peers.DATABASE))
    return data


def _run_server(
    options: Options,
    progress: Progress,
    folder: Path,
    data: Data,
    mongo_uri: str,
    redis_uri: str,
    workers: int,
    first: bool,
    insert_many: dict[str, Any],
) -> dict[str, Any]:
    out: dict[str, Any] = {"workers": workers, "scenarios": {}, "skipped": {}}
    progress.say(f"== {workers} worker(s): reference hello-world ceiling ({options.connections} connections)")
    hello = measure_hello(workers, options.connections, options.duration_s, folder)
    out["hello"] = hello
    progress.say(f"  hello: {hello['rps']:,.0f} req/s, p99 {hello['p99_ms']} ms")

    samples: list[dict[str, float]] = []
    server: Server | None = None
    try:
        for attempt in range(options.cold_starts):
            if server is not None:
                stop(server.child)
            server, cold = start_server(mongo_uri, redis_uri, workers, folder / f"server-{attempt}")
            samples.append(cold)
            progress.say(
                f"  cold start {attempt + 1}: first 200 of /healthz after {cold['healthz_ms']} ms, "
                f"of GET /metrics after {cold['first_get_ms']} ms"
            )
        assert server is not None
        out["cold_start"] = _cold_summary(samples)

        if first:
            progress.say(f"  seeding {len(data.seed_points):,} metrics through batch POST")
            begun = time.perf_counter()
            ids = post_batches(server.port, workload.json_batches(data.seed_points, options.batch_size))
            out["seed"] = {"metrics": len(ids), "seconds": round(time.perf_counter() - begun, 2)}
            out["storage"] = _storage(mongo_uri, redis_uri, len(ids), folder / "compact", progress)
            data_ids = ids
            workload.write_records(data.folder / "by_id.paths", (f"/metrics/{i}" for i in data_ids[:2000]))
            workload.write_records(data.folder / "put.ids", data_ids[2000:4000])
        probes = _probe(server)
        out["probes"] = probes
        files = _files(data, probes, influx=False)
        for path in workload.cached_paths():  # fill the cache before the cached scenario
            request(server.port, "GET", path)
        for scenario in _scenarios(files, options):
            if not options.wants(scenario.name):
                continue
            if scenario.name == "delete":
                _seed_deletes(server, data, options, progress, out["scenarios"].get("put", {}).get("rps"))
            out["scenarios"][scenario.name] = _run_scenario(
                scenario, server.url, options, progress, hello, insert_many, server, probes["stats"]
            )
        for name, reason in probes["skipped"].items():
            out["skipped"][name] = reason
            progress.say(f"  skip {name}: {reason}")

        if options.wants("mixed"):
            stats_before = _stats_summary(server) if probes["stats"] else None
            pace = f"{options.mixed_rate:g} req/s" if options.mixed_rate else "closed loop"
            progress.say(
                f"  mixed workload: locust, {options.mixed_users} users, {pace}, {options.mixed_duration_s:g} s"
            )
            mixed = run_mixed(
                server.url,
                options.mixed_users,
                options.mixed_duration_s,
                _read(files.prompt_paths),
                folder / "locust",
                options.mixed_rate,
            )
            out["mixed"] = mixed
            total = mixed["total"]
            progress.say(
                f"  mixed: {total.get('rps', 0):,.0f} req/s, p95 {total.get('p95_ms')} ms, "
                f"p99 {total.get('p99_ms')} ms, cache hit {mixed['cache_hit_ratio']}"
            )
            if stats_before is not None:
                mixed["server_stats"] = _stats_delta(stats_before, _stats_summary(server))
    finally:
        if server is not None:
            stop(server.child)
    return out


def _storage(mongo_uri: str, redis_uri: str, points: int, folder: Path, progress: Progress) -> dict[str, Any]:
    """Bytes per point right after the seed and, when the server can compact, once compacted (the figure the
    gate reads: a server compacts in the background within minutes, so that is what it keeps)."""
    seeded = stored_bytes(mongo_uri, points)
    progress.say(f"  stored: {seeded['bytes_per_point']} bytes per point after the seed (data + indexes)")
    compaction = compact(mongo_uri, redis_uri, folder, timeout_s=1200)
    if compaction is None:
        return {**seeded, "compacted": False}
    compacted = stored_bytes(mongo_uri, points)
    progress.say(f"  compacted in {compaction['seconds']} s: {compacted['bytes_per_point']} bytes per point")
    return {**compacted, "compacted": True, "compaction": compaction, "after_seed": seeded}


def _seed_deletes(server: Server, data: Data, options: Options, progress: Progress, put_rps: float | None) -> None:
    """Ids for the delete scenario, seeded just before it: twice what PUT's rate would delete in the time.

    A wrk thread that runs out of ids stops, but wrk still divides by the full duration, so the pool must last.
    """
    pool = options.delete_pool if not put_rps else int(put_rps * options.duration_s * 2) + 1000
    pool = min(max(pool, 1000), 500_000)
    points = workload.points(pool, data.now - timedelta(days=3), timedelta(milliseconds=5), seed=9)
    progress.say(f"  seeding {pool:,} metrics for the delete scenario")
    ids = post_batches(server.port, workload.json_batches(points, options.batch_size))
    workload.write_records(data.folder / "delete.ids", ids)


def _run_scenario(
    scenario: Scenario,
    url: str,
    options: Options,
    progress: Progress,
    hello: dict[str, Any],
    insert_many: dict[str, Any],
    server: Server | None,
    with_stats: bool = False,
) -> dict[str, Any]:
    load = scenario.load
    progress.say(
        f"  ▶ {scenario.name}: {scenario.endpoint}, wrk -t{load.threads} -c{load.connections} -d{load.duration_s:g}s"
    )
    try:
        if options.warmup_s > 0 and scenario.name not in _NO_WARMUP:
            run_wrk(url, Load(load.script, load.args, load.connections, load.threads, options.warmup_s))
        stats_before = _stats_summary(server) if server is not None and with_stats else None
        result = run_wrk(url, load)
    except LoadError as exc:
        progress.say(f"    failed: {exc}")
        return {"endpoint": scenario.endpoint, "error": str(exc)}
    result = {"endpoint": scenario.endpoint, "target": scenario.target.value, "summary": scenario.summary, **result}
    result["events_per_s"] = round(result["rps"] * scenario.events_per_request, 1)
    if scenario.reference is Reference.HELLO and hello.get("rps"):
        result["ratio"] = round(result["rps"] / hello["rps"], 3)
        result["ratio_to"] = "hello req/s"
    elif scenario.reference is Reference.INSERT_MANY and insert_many.get("docs_per_s"):
        result["ratio"] = round(result["events_per_s"] / insert_many["docs_per_s"], 3)
        result["ratio_to"] = "raw insert_many docs/s"
    if "sent" in result and result["sent"] >= _count_records(load.args[0]):
        result["pool_exhausted"] = True  # req/s is then a lower bound
        progress.say("    note: every seeded id was deleted before the time was up; req/s is a lower bound")
    if scenario.name == "get_cached" and server is not None:
        result["sampled_hit_ratio"] = _sample_hits(server)
    if stats_before is not None and server is not None:
        result["server_stats"] = _stats_delta(stats_before, _stats_summary(server))
    errors = result["non_2xx"] + result["socket_errors"]
    note = f", {errors} errors/non-2xx" if errors else ""
    ratio = f", {result['ratio']}x {result['ratio_to']}" if "ratio" in result else ""
    progress.say(
        f"    {result['rps']:,.0f} req/s ({result['events_per_s']:,.0f} events/s), p50 {result['p50_ms']} "
        f"p95 {result['p95_ms']} p99 {result['p99_ms']} ms{ratio}{note}"
    )
    return result


def _probe(server: Server) -> dict[str, Any]:
    """Which optional endpoints exist: /stats, /metrics/aggregate (and which spelling), /query (which prompts)."""
    out: dict[str, Any] = {"stats": http_status(server.port, "/stats") == 200, "skipped": {}}
    aggregate = None
    statuses = []
    for path in workload.aggregate_candidates():
        status = http_status(server.port, path, timeout=10)
        statuses.append(status)
        if status == 200:
            aggregate = path
            break
    out["aggregate"] = aggregate
    if aggregate is None:
        out["skipped"]["aggregate"] = (
            "GET /metrics/aggregate is absent (404)"
            if set(statuses) == {404}
            else f"GET /metrics/aggregate answered {statuses} to the spellings tried; none was 200"
        )
    top_events = http_status(server.port, workload.top_events_probe(), timeout=10)
    out["top_events"] = top_events == 200
    if top_events != 200:
        out["skipped"]["top_events_uncached"] = f"GET /metrics/aggregate?group_by=name&top=5 answered {top_events}"
    prompts = [p for p in workload.prompt_paths() if http_status(server.port, p, timeout=10) == 200]
    out["prompts"] = prompts
    if not prompts:
        status = http_status(server.port, workload.prompt_paths()[0], timeout=10)
        out["skipped"]["query_prompt"] = (
            "GET /query is absent (404)" if status == 404 else f"GET /query answered {status}"
        )
    return out


def _files(data: Data, probes: dict[str, Any], influx: bool) -> Files:
    d = data.folder
    aggregate = None
    if probes.get("aggregate"):
        aggregate = workload.write_records(d / "aggregate.paths", workload.aggregate_paths(probes["aggregate"]))
    prompts = workload.write_records(d / "prompt.paths", probes["prompts"]) if probes.get("prompts") else None
    return Files(
        cached_paths=d / "cached.paths",
        uncached_paths=d / "uncached.paths",
        by_id_paths=d / "by_id.paths",
        single_bodies=d / "single.json",
        batch_bodies=d / "batch.json",
        batch_series_bodies=d / "batch_series.json",
        put_ids=d / "put.ids",
        put_bodies=d / "put.json",
        delete_ids=d / "delete.ids",
        aggregate_paths=aggregate,
        top_events_paths=d / "top_events.paths" if probes.get("top_events") else None,
        prompt_paths=prompts,
        influx_single=d / "single.lines" if influx else None,
        influx_batch=d / "batch.lines" if influx else None,
        influx_query=d / "influx.paths" if influx else None,
    )


def _run_influx(
    options: Options, progress: Progress, folder: Path, data: Data, results: dict[str, Any]
) -> dict[str, Any]:
    names = ("influx_write_single", "influx_write_batch", "influx_query_latest")
    if not any(options.wants(n) for n in names):
        return {"skipped": "not selected"}
    program = peers.influxd_program()
    if program is None:
        progress.say("  skip InfluxDB peer: influxd is not installed (bench/setup.sh installs it)")
        return {"skipped": "influxd is not installed (run bench/setup.sh)"}
    version = peers.influxd_version(program)
    progress.say(f"== peer: {version}")
    influx = peers.start_influx(program, folder)
    try:
        progress.say(f"  seeding {len(data.seed_points):,} points through /write")
        begun = time.perf_counter()
        write_lines(influx.port, peers.DATABASE, workload.line_batches(data.seed_points, options.batch_size))
        out: dict[str, Any] = {
            "version": version,
            "seed_seconds": round(time.perf_counter() - begun, 2),
            "scenarios": {},
        }
        files = _files(data, {}, influx=True)
        hello = results["runs"][0]["hello"] if results["runs"] else {}
        insert_many = results.get("references", {}).get("insert_many", {})
        for scenario in _scenarios(files, options):
            if scenario.target is Target.INFLUX and options.wants(scenario.name):
                out["scenarios"][scenario.name] = _run_scenario(
                    scenario, influx.url, options, progress, hello, insert_many, None
                )
        return out
    finally:
        influx.close()


def _cold_summary(samples: list[dict[str, float]]) -> dict[str, Any]:
    firsts = sorted(s["first_get_ms"] for s in samples)
    return {
        "samples": samples,
        "first_get_ms": round(statistics.median(firsts), 1),
        # Nearest rank: with a handful of samples P95 and P99 are the slowest one.
        "p95_ms": firsts[max(0, -(-95 * len(firsts) // 100) - 1)],
        "p99_ms": firsts[max(0, -(-99 * len(firsts) // 100) - 1)],
    }


def _sample_hits(server: Server) -> float | None:
    hits = total = 0
    for path in workload.cached_paths():
        status, headers, _ = request(server.port, "GET", path)
        if status == 200:
            total += 1
            hits += headers.get("x-cache") == "hit"
    return round(hits / total, 3) if total else None


def _stats(server: Server) -> dict[str, Any] | None:
    with contextlib.suppress(Exception):
        status, _, body = request(server.port, "GET", "/stats")
        if status == 200:
            value: dict[str, Any] = orjson.loads(body)
            return value
    return None


def _stats_summary(server: Server) -> dict[str, float]:
    """The counters of GET /stats that explain a scenario, flat: cache hits per level, rate-limited, statuses."""
    snapshot = _stats(server) or {}
    flat: dict[str, float] = {}
    for key, value in (snapshot.get("cache") or {}).items():
        if isinstance(value, int | float) and not key.endswith("ratio"):
            flat[f"cache.{key}"] = value
    if isinstance(snapshot.get("rate_limited"), int | float):
        flat["rate_limited"] = snapshot["rate_limited"]
    for row in snapshot.get("requests") or []:
        if isinstance(row, dict) and {"route", "status", "count"} <= row.keys():
            flat[f"status.{row['route']}.{row['status']}"] = row["count"]
    batches = snapshot.get("batch_sizes") or {}
    for key in ("count", "sum"):
        if isinstance(batches.get(key), int | float):
            flat[f"write_batches.{key}"] = batches[key]
    return flat


def _stats_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """What changed during a scenario (counters only grow; a worker restart would show as a negative)."""
    delta = {key: round(value - before.get(key, 0), 3) for key, value in after.items()}
    out = {key: value for key, value in delta.items() if value and not key.startswith("status.stats.")}
    for level in ("l1", "l2"):
        hits, misses = out.get(f"cache.{level}_hits", 0), out.get(f"cache.{level}_misses", 0)
        if hits + misses:
            out[f"cache.{level}_hit_ratio"] = round(hits / (hits + misses), 4)
    return out


def _count_records(path: str) -> int:
    return len(_read(Path(path)))


def _read(path: Path | None) -> list[str]:
    if path is None:
        return []
    return [r for r in path.read_text().split(workload.RECORD_SEPARATOR) if r.strip()]


def _meta(options: Options) -> dict[str, Any]:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    return {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, "-m", "bench", *sys.argv[1:]]),
        "quick": options.quick,
        "duration_s": options.duration_s,
        "connections": options.connections,
        "workers": list(options.workers),
        "git_commit": git("rev-parse", "--short", "HEAD"),
        "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "processor": _cpu_model(),
        },
        "load_average_before": _load_average(),
        "note": SHARED_CPU_NOTE,
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]
