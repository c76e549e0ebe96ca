"""wrk as the load generator: one bounded run on loopback, its summary parsed from the JSON our Lua prints."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WRK_DIR = Path(__file__).resolve().parent / "wrk"
_JSON_LINE = re.compile(r"^BENCH_JSON (\{.*\})$", re.MULTILINE)
_TEXT_PERCENTILE = re.compile(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_UNIT_US = {"us": 1.0, "ms": 1000.0, "s": 1_000_000.0}


class LoadError(RuntimeError):
    """wrk is missing, failed, or printed no summary."""


@dataclass(frozen=True)
class Load:
    """What wrk is asked to do: a Lua script from bench/wrk with its arguments, against base_url."""

    script: str
    args: tuple[str, ...]
    connections: int
    threads: int
    duration_s: float
    timeout_s: float = 5.0


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(base_url: str, load: Load) -> dict[str, Any]:
    """Run wrk (bounded by -d and a hard timeout) and return its summary: req/s and latency in ms."""
    if not base_url.startswith("http://127.0.0.1:"):
        raise LoadError(f"load tests run on loopback only, not {base_url}")
    threads = max(1, min(load.threads, load.connections))
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{load.connections}",
        f"-d{max(1, round(load.duration_s))}s",
        f"--timeout={load.timeout_s:g}s",
        "--latency",
        "-s",
        str(WRK_DIR / load.script),
        base_url,
        "--",
        *load.args,
    ]
    env = {**os.environ, "BENCH_WRK_DIR": str(WRK_DIR)}
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=load.duration_s + 60, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise LoadError(f"wrk did not finish: {' '.join(command)}") from exc
    if done.returncode != 0:
        raise LoadError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    result = parse_wrk_output(done.stdout) | {"connections": load.connections, "threads": threads}
    return with_timeouts_counted(result, load.timeout_s)


def with_timeouts_counted(result: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """wrk leaves requests that hit `--timeout` out of its percentiles: a scenario whose every answer took longer
    reported P99 0 ms. Each percentile that the timed-out share reaches is at least the timeout, so it says that."""
    timeouts, answered = result["timeouts"], result["requests"]
    if not timeouts:
        return result
    share = timeouts / (answered + timeouts)
    out = dict(result)
    for key, percentile in (("p50", 50), ("p75", 75), ("p90", 90), ("p95", 95), ("p99", 99), ("p999", 99.9)):
        if share > 1 - percentile / 100:
            out[f"{key}_ms"] = max(out.get(f"{key}_ms") or 0.0, timeout_s * 1000)
            out["percentiles_floored_at_timeout"] = True
    return out


def parse_wrk_output(stdout: str) -> dict[str, Any]:
    match = _JSON_LINE.search(stdout)
    if match is None:
        raise LoadError(f"wrk printed no BENCH_JSON summary:\n{stdout[-2000:]}")
    raw: dict[str, Any] = json.loads(match.group(1))
    # --latency's own table is the cross-check for the Lua figures (and the fallback if one is null).
    text = {int(p): float(v) * _UNIT_US[u] for p, v, u in _TEXT_PERCENTILE.findall(stdout)}
    seconds = raw["duration_us"] / 1e6
    errors = sum(raw[f"errors_{kind}"] for kind in ("connect", "read", "write", "timeout"))
    out: dict[str, Any] = {
        "requests": raw["requests"],
        "duration_s": round(seconds, 3),
        "rps": round(raw["requests"] / seconds, 1) if seconds else 0.0,
        "non_2xx": raw["errors_status"],
        "socket_errors": errors,
        "timeouts": raw["errors_timeout"],
    }
    for key, percentile in (("p50", 50), ("p75", 75), ("p90", 90), ("p95", 95), ("p99", 99), ("p999", 999)):
        value = raw.get(f"{key}_us")
        if value is None and percentile in text:
            value = text[percentile]
        out[f"{key}_ms"] = None if value is None else round(value / 1000, 3)
    out["mean_ms"] = None if raw["latency_mean_us"] is None else round(raw["latency_mean_us"] / 1000, 3)
    out["max_ms"] = None if raw["latency_max_us"] is None else round(raw["latency_max_us"] / 1000, 3)
    if "sent_primary" in raw:
        out["sent"] = raw["sent_primary"]
    return out
