"""The mixed workload: locust, headless and bounded; percentiles per endpoint from its CSV, hits from x-cache."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.workload import write_records

REPO = Path(__file__).resolve().parent.parent
_PERCENTILES = {"p50_ms": "50%", "p75_ms": "75%", "p90_ms": "90%", "p95_ms": "95%", "p99_ms": "99%", "p999_ms": "99.9%"}


def run_mixed(
    base_url: str, users: int, duration_s: float, prompts: list[str], folder: Path, rate: float = 0.0
) -> dict[str, Any]:
    if not base_url.startswith("http://127.0.0.1:"):
        raise RuntimeError(f"load tests run on loopback only, not {base_url}")
    folder.mkdir(parents=True, exist_ok=True)
    prefix = folder / "locust"
    counts = folder / "cache.json"
    env = {**os.environ, "PYTHONPATH": str(REPO), "BENCH_LOCUST_OUT": str(counts)}
    env["BENCH_USER_RATE"] = str(rate / users if rate else 0)
    if prompts:
        env["BENCH_PROMPT_PATHS"] = str(write_records(folder / "prompts.paths", prompts))
    else:
        env.pop("BENCH_PROMPT_PATHS", None)
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(REPO / "bench" / "locustfile.py"),
        "--headless",
        "-u",
        str(users),
        "-r",
        str(users),
        "--run-time",
        f"{max(1, round(duration_s))}s",
        "--stop-timeout",
        "5",
        "--host",
        base_url,
        "--csv",
        str(prefix),
        "--only-summary",
        "--loglevel",
        "WARNING",
        "--exit-code-on-error",
        "0",
    ]
    with (folder / "locust.log").open("wb") as log:
        done = subprocess.run(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO, timeout=duration_s + 90, check=False
        )
    if done.returncode != 0:
        raise RuntimeError(f"locust exited {done.returncode}; see {folder / 'locust.log'}")
    return parse_locust(prefix.with_name("locust_stats.csv"), counts)


def parse_locust(stats_csv: Path, counts_json: Path) -> dict[str, Any]:
    endpoints: dict[str, dict[str, Any]] = {}
    total: dict[str, Any] = {}
    with stats_csv.open(newline="") as handle:
        for row in csv.DictReader(handle):
            entry: dict[str, Any] = {
                "requests": int(row["Request Count"]),
                "failures": int(row["Failure Count"]),
                "rps": round(float(row["Requests/s"]), 1),
                "mean_ms": round(float(row["Average Response Time"]), 2),
                "max_ms": round(float(row["Max Response Time"]), 2),
            }
            for key, column in _PERCENTILES.items():
                entry[key] = None if row[column] in ("", "N/A") else float(row[column])
            if row["Name"] == "Aggregated":
                total = entry
            else:
                endpoints[f"{row['Type']} {row['Name']}"] = entry
    cache = json.loads(counts_json.read_text()) if counts_json.is_file() else {}
    hits, misses = cache.get("metrics:hit", 0), cache.get("metrics:miss", 0)
    return {
        "endpoints": endpoints,
        "total": total,
        "cache_counts": cache,
        "cache_hit_ratio": round(hits / (hits + misses), 4) if hits + misses else None,
    }
