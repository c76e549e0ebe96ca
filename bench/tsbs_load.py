"""The Time Series Benchmark Suite's own loader against us, InfluxDB 1.x and VictoriaMetrics, in one run.

Run: `TSBS_SRC=<git dir of timescale/tsbs> .venv/bin/python -m bench.tsbs_load [--hours 3] [--workers 2]
[--server-workers 1] [--targets ours,influxdb,victoriametrics] [--keep]`.

TSBS is not on the Go module proxy: `scripts/agents.sh tsbs` builds `tsbs_generate_data` and
`tsbs_load_influx` once from the snapshot in TSBS_SRC and caches them (~/.cache/telemetry-server/agents). The
data is TSBS's devops "cpu-only" use case: 100 hosts, 10 fields, one line every 10 s per host, from
2016-01-01T00:00:00Z for `--hours` (3 h: 108,000 lines, 1.08M values), generated once and cached. Each
target gets the same file through `POST /write` from `tsbs_load_influx` (`--workers` clients, batches of
5,000 lines, gzip). We and VictoriaMetrics get `--do-create-db=false`: the loader's database check is a
`GET /query` (ours is the prompt endpoint; VictoriaMetrics has none). It prints, as JSON, each target's
values/s as TSBS reports it, our ratio to each peer, and what we stored, counted through our API
(`GET /metrics/aggregate?fn=count` per field): every value sent must be there.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

import orjson

from bench.abuse_probe import running
from bench.line_protocol_ingest import FIELDS
from bench.peers import (
    influxd_program,
    start_influx,
    start_victoria_metrics,
    victoria_metrics_program,
)
from bench.processes import scratch_folder
from bench.seed import request

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "telemetry-server" / "agents"
START = "2016-01-01T00:00:00Z"
HOSTS = 100
# "loaded 1080000 metrics in 1.35sec with 2 workers (mean rate 800000.00 metrics/sec)"
_LOADED = re.compile(r"loaded (\d+) metrics in ([\d.]+)sec with \d+ workers \(mean rate ([\d.]+) metrics/sec\)")
LOAD_TIMEOUT_SECONDS = 3600


def tsbs_bin() -> Path:
    done = subprocess.run([str(ROOT / "scripts" / "agents.sh"), "tsbs"], stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        sys.exit("TSBS could not be built (see above); set TSBS_SRC to a git directory of timescale/tsbs")
    return Path(done.stdout.strip())


def data_file(bin_dir: Path, hours: int, hosts: int = HOSTS) -> Path:
    """The cpu-only data set of `hosts` for `hours`, generated once (seed 123) and kept."""
    path = CACHE / "tsbs-data" / f"cpu-only-{hosts}hosts-10s-{hours}h-seed123.influx"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1_451_606_400 + hours * 3600))
    span = (f"--timestamp-start={START}", f"--timestamp-end={end}", "--log-interval=10s", "--format=influx")
    partial = path.with_suffix(".partial")
    with partial.open("wb") as out:
        subprocess.run(
            [str(bin_dir / "tsbs_generate_data"), "--use-case=cpu-only", "--seed=123", f"--scale={hosts}", *span],
            stdout=out,
            check=True,
        )
    partial.rename(path)
    return path


def tsbs_load(bin_dir: Path, data: Path, url: str, workers: int, create_db: bool, log: Path) -> dict[str, Any]:
    command = [str(bin_dir / "tsbs_load_influx"), f"--file={data}", f"--urls={url}", f"--workers={workers}"]
    command += ["--batch-size=5000", "--gzip=true", "--db-name=benchmark", f"--do-create-db={str(create_db).lower()}"]
    command += ["--reporting-period=30s"]
    print(f"tsbs_load_influx → {url}", file=sys.stderr)
    begun = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=LOAD_TIMEOUT_SECONDS, check=False)
    log.write_text(done.stdout + done.stderr)
    match = _LOADED.search(done.stdout)
    if done.returncode != 0 or match is None:
        return {"failed": (done.stdout + done.stderr)[-600:], "wall_s": round(time.perf_counter() - begun, 1)}
    return {
        "values": int(match.group(1)),
        "seconds": float(match.group(2)),
        "values_per_s": round(float(match.group(3))),
    }


def count_ours(port: int, hours: int) -> dict[str, int]:
    """What we stored of each field, through GET /metrics/aggregate?fn=count over the data's time span."""
    end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1_451_606_400 + hours * 3600))
    counts = {}
    for field in FIELDS:
        query = urllib.parse.urlencode({"fn": "count", "name": f"cpu.{field}", "from": START, "to": end})
        status, _, body = request(port, "GET", f"/metrics/aggregate?{query}", timeout=600)
        if status != 200:
            raise RuntimeError(f"count of cpu.{field} answered {status}: {body[:300]!r}")
        counts[f"cpu.{field}"] = int(orjson.loads(body)["rows"][0]["count"])
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="tsbs_load_influx clients")
    parser.add_argument("--server-workers", type=int, default=1)
    parser.add_argument("--targets", default="ours,influxdb,victoriametrics")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")
    options = parser.parse_args()
    targets = options.targets.split(",")
    bin_dir = tsbs_bin()
    data = data_file(bin_dir, options.hours)
    results: dict[str, Any] = {"data": data.name, "tsbs_workers": options.workers, "batch_lines": 5000}
    results["load_average_before"] = os.getloadavg()
    with scratch_folder("tsbs-load-", options.keep) as folder:
        if "influxdb" in targets and (program := influxd_program()) is not None:
            influx = start_influx(program, folder / "influx")
            try:
                results["influxdb"] = tsbs_load(bin_dir, data, influx.url, options.workers, True, folder / "i.log")
            finally:
                influx.close()
        if "victoriametrics" in targets and (program := victoria_metrics_program()) is not None:
            victoria = start_victoria_metrics(program, folder / "vm")
            try:
                results["victoriametrics"] = tsbs_load(
                    bin_dir, data, victoria.url, options.workers, False, folder / "vm.log"
                )
            finally:
                victoria.close()
        if "ours" in targets:
            os.environ.setdefault("QUERY_TIMEOUT_MS", "600000")  # the counts below read 108k points a field
            with running(folder, options.server_workers) as (server, _):
                results["ours"] = tsbs_load(bin_dir, data, server.url, options.workers, False, folder / "ours.log")
                if "values" in results["ours"]:
                    stored = count_ours(server.port, options.hours)
                    results["ours"]["stored_by_field"] = stored
                    results["ours"]["stored"] = sum(stored.values())
                    results["ours"]["all_stored"] = sum(stored.values()) == results["ours"]["values"]
        ours = results.get("ours", {}).get("values_per_s")
        for peer in ("influxdb", "victoriametrics"):
            theirs = results.get(peer, {}).get("values_per_s")
            if ours and theirs:
                results[f"ratio_to_{peer}"] = round(ours / theirs, 4)
        results["load_average_after"] = os.getloadavg()
    print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
