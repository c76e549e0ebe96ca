"""Line-protocol ingest over real sockets, batches of 5,000 lines: our `POST /write` against InfluxDB 1.x fed
the same bodies in the same run.

Run: `.venv/bin/python -m bench.line_protocol_ingest [--lines 50000] [--batch 5000] [--senders 2] [--gzip]
[--workers 1] [--keep]`. It starts its own engine (as `python -m bench` chooses it), Redis, our server and
`influxd` in a temporary folder; makes TSBS devops cpu lines (100 hosts, 10 tags, 10 integer fields, 10 s
apart); and has `--senders` threads POST the batches on keep-alive connections, to each target in turn. It
prints, as JSON, values/s (one value per field: what InfluxDB and TSBS count, and our points) and our rate
as a ratio of InfluxDB's. Every request is on loopback and bounded by the line count.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import gzip
import http.client
import sys
import time
from collections.abc import Sequence
from typing import Any

import orjson

from bench.abuse_probe import running
from bench.peers import influxd_program, start_influx
from bench.processes import LOOPBACK, scratch_folder

HOSTS = 100
FIELDS = ("usage_user", "usage_system", "usage_idle", "usage_nice", "usage_iowait")
FIELDS += ("usage_irq", "usage_softirq", "usage_steal", "usage_guest", "usage_guest_nice")
START_NS = 1_451_606_400 * 10**9  # 2016-01-01T00:00:00Z, TSBS's default start
STEP_NS = 10 * 10**9


def tsbs_cpu_lines(count: int) -> list[bytes]:
    """`count` lines shaped as tsbs_generate_data --use-case=cpu-only writes them (values vary, tags do not)."""
    lines = []
    for n in range(count):
        host, tick = n % HOSTS, n // HOSTS
        tags = (
            f"hostname=host_{host},region=eu-west-{host % 3},datacenter=eu-west-{host % 3}a,rack={host % 97},"
            f"os=Ubuntu16.04LTS,arch=x64,team=NYC,service={host % 19},service_version={host % 2},"
            "service_environment=production"
        )
        fields = ",".join(f"{name}={(n * 7 + i * 13) % 100}i" for i, name in enumerate(FIELDS))
        lines.append(f"cpu,{tags} {fields} {START_NS + tick * STEP_NS}".encode())
    return lines


def batches(lines: Sequence[bytes], size: int, packed: bool) -> list[bytes]:
    bodies = [b"\n".join(lines[start : start + size]) + b"\n" for start in range(0, len(lines), size)]
    return [gzip.compress(body, 1) for body in bodies] if packed else bodies


def load(port: int, path: str, bodies: Sequence[bytes], senders: int, packed: bool) -> float:
    """Seconds to POST every body, `senders` at a time, each on its own keep-alive connection."""
    headers = {"content-type": "text/plain; charset=utf-8"} | ({"content-encoding": "gzip"} if packed else {})

    def send(share: Sequence[bytes]) -> None:
        conn = http.client.HTTPConnection(LOOPBACK, port, timeout=300)
        try:
            for body in share:
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                answer = response.read()
                if response.status != 204:
                    raise RuntimeError(f"POST {path} answered {response.status}: {answer[:300]!r}")
        finally:
            conn.close()

    shares = [bodies[i::senders] for i in range(senders)]
    begun = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(senders) as pool:
        for done in [pool.submit(send, share) for share in shares]:
            done.result()
    return time.perf_counter() - begun


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--senders", type=int, default=2)
    parser.add_argument("--gzip", action="store_true", help="send the batches gzipped (as TSBS and Telegraf do)")
    parser.add_argument("--workers", type=int, default=1, help="our server's workers")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")
    options = parser.parse_args()
    program = influxd_program()
    if program is None:
        sys.exit("influxd is not installed (scripts/agents.sh apt installs Debian's influxdb)")
    values = options.lines * len(FIELDS)
    bodies = batches(tsbs_cpu_lines(options.lines), options.batch, options.gzip)
    results: dict[str, Any] = {"lines": options.lines, "values": values, "batch_lines": options.batch}
    results |= {"senders": options.senders, "gzip": options.gzip, "workers": options.workers}
    with scratch_folder("lp-ingest-", options.keep) as folder:
        influx = start_influx(program, folder / "influx")
        try:
            print("loading InfluxDB", file=sys.stderr)
            seconds = load(influx.port, "/write?db=bench", bodies, options.senders, options.gzip)
            results["influxdb"] = {"seconds": round(seconds, 2), "values_per_s": round(values / seconds)}
        finally:
            influx.close()
        with running(folder, options.workers) as (server, _):
            print("loading telemetry-server", file=sys.stderr)
            seconds = load(server.port, "/write?db=bench", bodies, options.senders, options.gzip)
            results["ours"] = {"seconds": round(seconds, 2), "values_per_s": round(values / seconds)}
        results["ratio_to_influxdb"] = round(results["ours"]["values_per_s"] / results["influxdb"]["values_per_s"], 3)
    print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
