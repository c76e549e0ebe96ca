"""TSBS's PromQL queries against our /api/v1/query_range and VictoriaMetrics', in one run, cache on and off.

Run: `TSBS_SRC=<git dir of timescale/tsbs> .venv/bin/python -m bench.promql_tsbs [--hosts 10] [--hours 13]
[--queries 50] [--workers 2] [--server-workers 2] [--types single-groupby-1-1-1,...] [--keep]`.

`scripts/agents.sh tsbs` builds TSBS's `tsbs_generate_data`, `tsbs_generate_queries` and
`tsbs_run_queries_victoriametrics` once and caches them. The data is TSBS's devops "cpu-only" use case (`--hosts`
hosts, 10 fields, one line every 10 s), generated once and kept; both servers get the same snappy remote_write
bodies (`POST /api/v1/write`), each field a series `cpu_<field>` with the host's ten tags as labels, which are the
names TSBS's VictoriaMetrics queries ask for. The queries are TSBS's own for VictoriaMetrics
(`--format=victoriametrics`: `max(max_over_time({__name__=~'cpu_(...)', hostname=~'...'}[1h])) by (__name__)` and
the like, as `GET /api/v1/query_range`), `--queries` of each type with random windows (seed 123), sent by
`tsbs_run_queries_victoriametrics` with `--workers` clients (two of the four shapes asked for are MetricsQL, not
PromQL: see QUERY_TYPES) to:
- VictoriaMetrics uncached (`-search.disableCache`) and cached (its default, the file run twice, the second counted);
- us uncached (a server with CACHE_TTL_SECONDS=0 and L1_CACHE_TTL_MS=0 on the same databases) and cached (the
  file run twice against the default server, the second counted: every answer then comes from the cache).
It prints, as JSON, queries/s and the P50/P99 latency (ms) TSBS reports for each, and our ratios to
VictoriaMetrics. The data spans 13 hours: TSBS needs it longer than its longest window (12 hours).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cramjam
import orjson

from bench.engine import choose_engine, start_mongo, start_redis
from bench.faults import start_server
from bench.peers import start_victoria_metrics, victoria_metrics_program
from bench.processes import Child, scratch_folder, stop
from bench.seed import request
from bench.tsbs_load import CACHE, START, data_file, tsbs_bin
from telemetry_server.ingest.remote_write import MESSAGES, Label

# single-groupby-5-1-12 and cpu-max-all-8 select several metrics and group `max_over_time(...)` by __name__, which
# MetricsQL keeps and PromQL drops: Prometheus 2.42 answers them 422 ("vector cannot contain metrics with the same
# labelset"), and so do we. Their one-metric shapes over the same windows and hosts stand beside them.
QUERY_TYPES = (
    "single-groupby-1-1-1",
    "single-groupby-5-1-12",
    "single-groupby-1-1-12",
    "cpu-max-all-8",
    "single-groupby-1-8-1",
    "double-groupby-1",
)
LINES_PER_WRITE = 2_000  # 20,000 samples a request, under INGEST_MAX_POINTS
RUN_TIMEOUT_SECONDS = 600
UNCACHED = {"CACHE_TTL_SECONDS": "0", "L1_CACHE_TTL_MS": "0"}
# How the runner stops at an answer that is not a 200: "statuscode received: 422; Body: {...}".
_REFUSED = re.compile(r"statuscode received: (\d+); Body: (.{0,300})")


def queries_file(bin_dir: Path, query_type: str, hosts: int, hours: int, count: int) -> Path:
    """TSBS's VictoriaMetrics queries of one type over the data's span, generated once (seed 123) and kept."""
    path = CACHE / "tsbs-queries" / f"vm-{query_type}-{hosts}hosts-{hours}h-{count}q-seed123.gob"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1_451_606_400 + hours * 3600))
    partial = path.with_suffix(".partial")
    with partial.open("wb") as out:
        subprocess.run(
            [
                str(bin_dir / "tsbs_generate_queries"),
                "--use-case=cpu-only",
                "--format=victoriametrics",
                "--seed=123",
                f"--scale={hosts}",
                f"--queries={count}",
                f"--query-type={query_type}",
                f"--timestamp-start={START}",
                f"--timestamp-end={end}",
            ],
            stdout=out,
            check=True,
        )
    partial.rename(path)
    return path


def write_bodies(data: Path) -> Iterator[bytes]:
    """The line-protocol file as snappy remote_write bodies: field f of measurement m is the series `m_f`."""
    write_request, time_series, sample_class = MESSAGES["WriteRequest"], MESSAGES["TimeSeries"], MESSAGES["Sample"]
    labels_of: dict[tuple[str, str], list[bytes]] = {}
    batch: dict[tuple[str, str], list[Any]] = defaultdict(list)
    lines = 0
    with data.open() as source:
        for line in source:
            head, fields, stamp = line.rstrip("\n").split(" ")
            measurement, _, tags = head.partition(",")
            millis = int(stamp) // 1_000_000
            for field in fields.split(","):
                name, _, value = field.partition("=")
                key = (f"{measurement}_{name}", tags)
                if key not in labels_of:
                    pairs = [("__name__", key[0]), *(tag.split("=", 1) for tag in tags.split(","))]
                    labels_of[key] = [Label(name=k, value=v).SerializeToString() for k, v in pairs]
                batch[key].append(sample_class(value=float(value.rstrip("i")), timestamp=millis))
            lines += 1
            if lines == LINES_PER_WRITE:
                yield _encode(write_request, time_series, labels_of, batch)
                batch, lines = defaultdict(list), 0
    if batch:
        yield _encode(write_request, time_series, labels_of, batch)


def _encode(write_request: Any, time_series: Any, labels_of: dict[Any, list[bytes]], batch: dict[Any, Any]) -> bytes:
    message = write_request(timeseries=[time_series(labels=labels_of[key], samples=s) for key, s in batch.items()])
    return bytes(cramjam.snappy.compress_raw(message.SerializeToString()))


def load(ports: list[int], data: Path) -> dict[str, float]:
    """Send every body to every port (one client each, in parallel); seconds per port."""
    bodies = list(write_bodies(data))

    def send(port: int) -> float:
        begun = time.perf_counter()
        for body in bodies:
            status, _, answer = request(port, "POST", "/api/v1/write", body, "application/x-protobuf", timeout=600)
            if status not in (200, 204):
                raise RuntimeError(f"remote_write to port {port} answered {status}: {answer[:300]!r}")
        return round(time.perf_counter() - begun, 1)

    with ThreadPoolExecutor(len(ports)) as pool:
        return dict(zip((str(p) for p in ports), pool.map(send, ports), strict=True))


def run_queries(bin_dir: Path, queries: Path, url: str, workers: int, folder: Path, label: str) -> dict[str, Any]:
    """tsbs_run_queries_victoriametrics over one file; queries/s and latency quantiles (ms) from its results."""
    results = folder / f"{label}.json"
    command = [str(bin_dir / "tsbs_run_queries_victoriametrics"), f"--file={queries}", f"--urls={url}"]
    command += [f"--workers={workers}", "--print-interval=0", f"--results-file={results}"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS, check=False)
    except subprocess.TimeoutExpired:
        # Seen once, against VictoriaMetrics on a machine at load 14: the runner waited on nothing for minutes.
        return {"failed": f"tsbs_run_queries_victoriametrics did not end within {RUN_TIMEOUT_SECONDS} s"}
    (folder / f"{label}.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0 or not results.exists():
        refused = _REFUSED.search(done.stdout + done.stderr)
        if refused is not None:
            return {"refused": f"{refused.group(1)} {refused.group(2)}"}
        return {"failed": (done.stdout + done.stderr)[-600:]}
    summary = orjson.loads(results.read_bytes())
    totals = summary["Totals"]
    everything = "all_queries"  # TSBS's label, its non-alphanumerics made `_`
    quantiles = totals["overallQuantiles"][everything]
    return {
        "queries_per_s": round(totals["overallQueryRates"][everything], 2),
        "p50_ms": quantiles["q50"],
        "p99_ms": quantiles["q99"],
    }


def measure(
    bin_dir: Path, files: dict[str, Path], url: str, workers: int, folder: Path, label: str, *, warm: bool
) -> dict[str, Any]:
    """Each query type's figures; `warm`: the file is run once first, unmeasured, so the cache holds it."""
    figures = {}
    for query_type, queries in files.items():
        if warm:
            run_queries(bin_dir, queries, url, workers, folder, f"{label}-{query_type}-warm-up")
        figures[query_type] = run_queries(bin_dir, queries, url, workers, folder, f"{label}-{query_type}")
        print(f"{label} {query_type}: {figures[query_type]}", file=sys.stderr)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--hours", type=int, default=13)
    parser.add_argument("--queries", type=int, default=50, help="of each type")
    parser.add_argument("--workers", type=int, default=2, help="tsbs_run_queries_victoriametrics clients")
    parser.add_argument("--server-workers", type=int, default=2)
    parser.add_argument("--types", default=",".join(QUERY_TYPES))
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, TSBS results)")
    options = parser.parse_args()
    bin_dir = tsbs_bin()
    data = data_file(bin_dir, options.hours, hosts=options.hosts)
    files = {
        t: queries_file(bin_dir, t, options.hosts, options.hours, options.queries) for t in options.types.split(",")
    }
    results: dict[str, Any] = {
        "data": data.name,
        "queries_per_type": options.queries,
        "tsbs_workers": options.workers,
        "server_workers": options.server_workers,
        "load_average_before": os.getloadavg(),
    }
    program = victoria_metrics_program()
    started: list[Child] = []
    with scratch_folder("promql-tsbs-", options.keep) as folder:
        try:
            choice = choose_engine(build_timeout=5)
            mongo, mongo_uri = start_mongo(choice, folder)
            started.append(mongo)
            redis, redis_uri = start_redis(folder)
            started.append(redis)
            ours = start_server(mongo_uri, redis_uri, options.server_workers, folder / "ours", {})
            started.append(ours.child)
            ports = [ours.port]
            victoria = None
            if program is not None:
                victoria = start_victoria_metrics(program, folder / "vm")
                ports.append(victoria.port)
            results["load_s"] = load(ports, data)
            if victoria is not None:
                victoria.close()
                victoria = start_victoria_metrics(program, folder / "vm")  # type: ignore[arg-type]
                results["victoriametrics_uncached"] = measure(
                    bin_dir, files, victoria.url, options.workers, folder, "vm-uncached", warm=False
                )
                victoria.close()
                victoria = start_victoria_metrics(program, folder / "vm", cache=True)  # type: ignore[arg-type]
                results["victoriametrics_cached"] = measure(
                    bin_dir, files, victoria.url, options.workers, folder, "vm-cached", warm=True
                )
                victoria.close()
            else:
                results["victoriametrics"] = "skipped: victoria-metrics is not installed (Debian victoria-metrics)"
            uncached = start_server(mongo_uri, redis_uri, options.server_workers, folder / "uncached", UNCACHED)
            started.append(uncached.child)
            results["ours_uncached"] = measure(
                bin_dir, files, uncached.url, options.workers, folder, "ours-uncached", warm=False
            )
            results["ours_cached"] = measure(
                bin_dir, files, ours.url, options.workers, folder, "ours-cached", warm=True
            )
        finally:
            for child in reversed(started):
                stop(child)
        for cache in ("uncached", "cached"):
            theirs = results.get(f"victoriametrics_{cache}", {})
            for query_type, figures in results[f"ours_{cache}"].items():
                peer = theirs.get(query_type, {})
                if "queries_per_s" in figures and "queries_per_s" in peer:
                    ratio = round(figures["queries_per_s"] / peer["queries_per_s"], 3)
                    results.setdefault(f"ratio_to_victoriametrics_{cache}", {})[query_type] = ratio
        results["load_average_after"] = os.getloadavg()
    print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
