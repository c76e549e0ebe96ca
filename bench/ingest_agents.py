"""remote_write and OTLP ingest rates, in points/s, at the batch sizes the real senders make by default.

Run: `.venv/bin/python -m bench.ingest_agents [--series 20000] [--duration 20] [--connections 2] [--keep]`.

Each sender runs for real against a recorder on loopback: Prometheus (Debian `prometheus`) and vmagent
(Debian `victoria-metrics`) scraping a target of `--series` gauges every second, and the OpenTelemetry SDK's
OTLP/HTTP exporters (protobuf and JSON) exporting `--series` counter points at once (the SDK's default: one
request per collection). The largest request each sent, as it sent it (headers and compression kept), is then
replayed with wrk (`--connections` at once, for `--duration` s or five times what one request took per
connection, whichever is longer: the last column) against a server, engine and Redis of its own:
points/s = 2xx requests/s times points a request stores (a request still in flight when wrk stops is not
counted, so with few large requests the figure is low by up to one request). For the ratio, the Prometheus
request's points are also sent as a JSON batch to `POST /metrics`. A receiver is measured, not the senders: Prometheus
sends only what it scrapes (`--series`/s here), far below what it could send from a backlog.
"""

from __future__ import annotations

import argparse
import http.server
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.engine import EngineChoice, choose_engine, start_mongo, start_redis
from bench.processes import LOOPBACK, Child, free_port, spawn, stop, wait_for_port
from bench.server import start_server

WRK_DIR = Path(__file__).parent / "wrk"


@dataclass
class Recorded:
    """One request as a sender sent it."""

    path: str
    content_type: str
    content_encoding: str
    body: bytes


class Recorder:
    """A loopback HTTP server that keeps every POST and answers as a receiver that stored it."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                recorder.requests.append(
                    Recorded(
                        self.path,
                        self.headers.get("content-type", ""),
                        self.headers.get("content-encoding", ""),
                        body,
                    )
                )
                status = 200 if self.path == "/v1/metrics" else 204
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def do_GET(self) -> None:
                body = recorder.exposition.encode()
                self.send_response(200)
                self.send_header("content-type", "text/plain; version=0.0.4")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.exposition = ""
        self._server = http.server.ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def largest(self, since: int = 0) -> Recorded:
        return max(self.requests[since:], key=lambda r: len(r.body))

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def gauges(series: int) -> str:
    lines = ["# TYPE bench_load gauge"]
    lines += [f'bench_load{{host="host-{i % 100}",core="{i}"}} {i * 0.5}' for i in range(series)]
    return "\n".join(lines) + "\n"


def record_prometheus(recorder: Recorder, folder: Path, seconds: float) -> Recorded | None:
    program = shutil.which("prometheus")
    if program is None:
        print("ingest_agents: prometheus not installed (scripts/agents.sh apt): skipped", file=sys.stderr)
        return None
    config = folder / "prometheus.yml"
    target = f"{LOOPBACK}:{recorder.port}"
    config.write_text(
        json.dumps(
            {
                "global": {"scrape_interval": "1s"},
                "scrape_configs": [{"job_name": "bench", "static_configs": [{"targets": [target]}]}],
                "remote_write": [{"url": f"http://{target}/api/v1/write", "metadata_config": {"send": False}}],
            }
        )
    )
    port = free_port()
    command = [program, f"--config.file={config}", f"--storage.tsdb.path={folder / 'prometheus'}"]
    command += [f"--web.listen-address={LOOPBACK}:{port}"]
    return run_sender(recorder, "prometheus", command, port, folder, seconds)


def record_vmagent(recorder: Recorder, folder: Path, seconds: float) -> Recorded | None:
    program = shutil.which("vmagent")
    if program is None:
        print("ingest_agents: vmagent not installed (scripts/agents.sh apt): skipped", file=sys.stderr)
        return None
    target = f"{LOOPBACK}:{recorder.port}"
    config = folder / "scrape.yml"
    config.write_text(
        json.dumps(
            {
                "global": {"scrape_interval": "1s"},
                "scrape_configs": [{"job_name": "bench", "static_configs": [{"targets": [target]}]}],
            }
        )
    )
    port = free_port()
    command = [program, f"-promscrape.config={config}", f"-httpListenAddr={LOOPBACK}:{port}"]
    command += [f"-remoteWrite.url=http://{target}/api/v1/write", f"-remoteWrite.tmpDataPath={folder / 'vmagent'}"]
    return run_sender(recorder, "vmagent", command, port, folder, seconds)


def run_sender(
    recorder: Recorder, name: str, command: list[str], port: int, folder: Path, seconds: float
) -> Recorded | None:
    since = len(recorder.requests)
    child = spawn(name, command, folder / f"{name}.log")
    try:
        wait_for_port(child, port, timeout=30)
        time.sleep(seconds)
    finally:
        stop(child)
    if len(recorder.requests) == since:
        print(f"ingest_agents: {name} sent nothing in {seconds:.0f} s (log: {folder / name}.log)", file=sys.stderr)
        return None
    return recorder.largest(since)


def record_otlp(recorder: Recorder, series: int, encoding: str) -> Recorded | None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    module = {
        "protobuf": "opentelemetry.exporter.otlp.proto.http.metric_exporter",
        "json": "opentelemetry.exporter.otlp.json.http.metric_exporter",
    }[encoding]
    try:
        exporter_class = __import__(module, fromlist=["OTLPMetricExporter"]).OTLPMetricExporter
    except ImportError:
        print(f"ingest_agents: the OTLP {encoding} exporter is not installed: skipped", file=sys.stderr)
        return None
    since = len(recorder.requests)
    exporter = exporter_class(endpoint=f"http://{LOOPBACK}:{recorder.port}/v1/metrics")
    provider = MeterProvider(metric_readers=[PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)])
    counter = provider.get_meter("bench").create_counter("bench.requests")
    for i in range(series):
        counter.add(i + 1, {"host": f"host-{i % 100}", "route": f"/r/{i}"})
    provider.force_flush()
    provider.shutdown()
    return recorder.largest(since) if len(recorder.requests) > since else None


def as_json_batch(recorded: Recorded) -> Recorded:
    """The same points as a `POST /metrics` batch: the JSON API's rate on the same engine, for the ratio."""
    import orjson

    from telemetry_server.ingest.remote_write import decode_write_request, decompress_snappy

    points, _ = decode_write_request(decompress_snappy(recorded.body, 1 << 30), 10**9)
    batch = [
        {"name": p.name, "tags": list(p.tags), "value": p.value, "timestamp": p.timestamp.isoformat()} for p in points
    ]
    return Recorded("/metrics", "application/json", "", orjson.dumps(batch))


def points_in(recorded: Recorded) -> int:
    """What the server stores of this request, by the server's own decoding."""
    from telemetry_server.ingest.otlp import decode_metrics, parse_request
    from telemetry_server.ingest.remote_write import decode_write_request, decompress_snappy
    from telemetry_server.models.timestamps import utc_now

    if recorded.path == "/metrics":
        return len(json.loads(recorded.body))
    if recorded.path == "/v1/metrics":
        body = recorded.body
        if recorded.content_encoding == "gzip":
            import gzip

            body = gzip.decompress(body)
        message = parse_request(body, recorded.content_type.startswith("application/json"))
        return len(decode_metrics(message, utc_now(), 10**9)[0])
    return len(decode_write_request(decompress_snappy(recorded.body, 1 << 30), 10**9)[0])


def replay(url: str, recorded: Recorded, folder: Path, connections: int, duration: int) -> dict[str, float]:
    body_file = folder / f"body-{abs(hash(recorded.body))}"
    body_file.write_bytes(recorded.body)
    # A timeout past the duration: a 20,000-point OTLP request takes seconds on a slow engine, and is measured.
    command = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", f"--timeout={duration + 30}s", "--latency"]
    command += ["-s", str(WRK_DIR / "replay.lua")]
    command += [url, "--", recorded.path, str(body_file), recorded.content_type, recorded.content_encoding]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=duration + 60,
        env={**os.environ, "BENCH_WRK_DIR": str(WRK_DIR)},
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary: {done.stdout[-2000:]} {done.stderr[-2000:]}")
    summary: dict[str, float] = json.loads(line.removeprefix("BENCH_JSON "))
    return summary


def measure(recorded: Recorded, choice: EngineChoice, folder: Path, args: argparse.Namespace) -> str:
    """Replay against a server, engine and Redis of its own (a request still being stored when wrk stops must not
    slow the next sender's run); the table row's cells after the sender's name."""
    points = points_in(recorded)
    print(f"ingest_agents: replaying {len(recorded.body):,} B with {points:,} points a request", file=sys.stderr)
    started: list[Child] = []
    try:
        mongo, mongo_uri = start_mongo(choice, folder)
        started.append(mongo)
        redis, redis_uri = start_redis(folder)
        started.append(redis)
        server, _ = start_server(mongo_uri, redis_uri, 1, folder / "server")
        started.append(server.child)
        # One request first, timed: the run lasts long enough for each connection to finish several.
        begun = time.perf_counter()
        warmup = httpx.post(
            server.url + recorded.path,
            content=recorded.body,
            headers={"content-type": recorded.content_type, "content-encoding": recorded.content_encoding},
            timeout=600,
        )
        warmup.raise_for_status()
        duration = max(args.duration, math.ceil(5 * (time.perf_counter() - begun) * args.connections))
        summary = replay(server.url, recorded, folder, args.connections, duration)
    finally:
        for child in reversed(started):
            stop(child)
    seconds = summary["duration_us"] / 1e6
    errors = summary["errors_status"] + summary["errors_timeout"] + summary["errors_read"]
    rate = (summary["requests"] - summary["errors_status"]) / seconds
    encoding = f", {recorded.content_encoding}" if recorded.content_encoding else ""
    return (
        f"{len(recorded.body):,} B {recorded.content_type}{encoding} | {points:,} | {rate:,.2f} | "
        f"{rate * points:,.0f} | {summary['p50_us'] / 1000:.1f} | {summary['p99_us'] / 1000:.1f} | {errors:.0f} | "
        f"{duration}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, default=20_000)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--connections", type=int, default=2)
    parser.add_argument("--record-seconds", type=float, default=15.0)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="ingest-agents-"))
    children: list[str] = []
    recorder = Recorder()
    recorder.exposition = gauges(args.series)
    try:
        print("ingest_agents: recording the senders' requests", file=sys.stderr)
        senders = {
            "prometheus remote_write": record_prometheus(recorder, folder, args.record_seconds),
            "vmagent remote_write": record_vmagent(recorder, folder, args.record_seconds),
            "OpenTelemetry SDK OTLP protobuf": record_otlp(recorder, args.series, "protobuf"),
            "OpenTelemetry SDK OTLP JSON": record_otlp(recorder, args.series, "json"),
        }
        prometheus = senders["prometheus remote_write"]
        if prometheus is not None:
            senders["(reference) the Prometheus request's points as a JSON batch POST"] = as_json_batch(prometheus)
        choice = choose_engine(build_timeout=1200)
        print(f"engine: {choice.name} ({choice.note}); 1 worker; wrk -c{args.connections} -d{args.duration}s")
        print("| sender | request | points/request | requests/s | points/s | p50 ms | p99 ms | errors | s |")
        print("|---|---|---|---|---|---|---|---|---|")
        for name, recorded in senders.items():
            if recorded is None:
                print(f"| {name} | not run | | | | | | | |")
                continue
            print(f"| {name} | {measure(recorded, choice, folder / str(len(children)), args)} |", flush=True)
            children.append(name)
    finally:
        recorder.close()
        if args.keep:
            print(f"ingest_agents: kept {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
