"""remote_write and OTLP decoding, in-process: the codecs measured against each other, and our whole decode.

Run: `.venv/bin/python -m bench.ingest_codecs [--rounds 20]`. On a Prometheus-shaped request (500 series of 4
labels, one sample each: Prometheus' batch) it prints µs for snappy decompression by `cramjam` and, when it
is installed, `python-snappy`; for upb parsing the WriteRequest; and for `decode_write_request` (parse,
naming rule, one MetricInput a sample). On an OTLP request of 500 gauge points it prints the protobuf and JSON
parses and `decode_metrics`. The best of the rounds is kept. docs/ingest.md cites the figures.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime

import cramjam
from google.protobuf import json_format
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from telemetry_server.ingest.otlp import decode_metrics, parse_request
from telemetry_server.ingest.remote_write import Label, WriteRequest, decode_write_request, series_identity

SERIES = 500


def best_us(work: Callable[[], object], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        begun = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - begun)
    return round(best * 1e6, 1)


def remote_write_request() -> bytes:
    message = WriteRequest()
    for i in range(SERIES):
        series = message.timeseries.add()
        labels = {"__name__": "http_requests_total", "code": str(200 + i), "instance": "web-1:9090", "job": "api"}
        for name in sorted(labels):
            series.labels.append(Label(name=name, value=labels[name]).SerializeToString())
        series.samples.add(value=i * 1.5, timestamp=1_795_773_600_000 + i)
    return bytes(message.SerializeToString())


def otlp_request() -> ExportMetricsServiceRequest:
    request = ExportMetricsServiceRequest()
    scope = request.resource_metrics.add().scope_metrics.add()
    scope.scope.name = "bench"
    metric = scope.metrics.add(name="cpu.load")
    for i in range(SERIES):
        point = metric.gauge.data_points.add(time_unix_nano=1_795_773_600_000_000_000 + i, as_double=i * 0.5)
        point.attributes.add(key="host").value.string_value = f"host-{i}"
    return request


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    rounds = parser.parse_args().rounds
    data = remote_write_request()
    block = bytes(cramjam.snappy.compress_raw(data))
    print(f"remote_write request: {SERIES} samples, {len(data):,} B, {len(block):,} B snappy")
    print(f"  snappy decompress, cramjam:        {best_us(lambda: cramjam.snappy.decompress_raw(block), rounds)} µs")
    try:
        import snappy  # python-snappy: measured when installed, not a dependency

        print(f"  snappy decompress, python-snappy:  {best_us(lambda: snappy.uncompress(block), rounds)} µs")
    except ImportError:
        print("  snappy decompress, python-snappy:  not installed (pip install python-snappy)")
    print(f"  WriteRequest parse (upb):          {best_us(lambda: WriteRequest.FromString(data), rounds)} µs")
    cold = best_us(lambda: (series_identity.cache_clear(), decode_write_request(data, 10**6)), rounds)
    print(f"  decode_write_request, new series:  {cold} µs ({SERIES / cold * 1e6:,.0f} samples/s)")
    whole = best_us(lambda: decode_write_request(data, 10**6), rounds)
    print(f"  decode_write_request, seen series: {whole} µs ({SERIES / whole * 1e6:,.0f} samples/s)")
    request = otlp_request()
    binary = request.SerializeToString()
    text = json_format.MessageToJson(request).encode()
    now = datetime.now(UTC)
    print(f"OTLP request: {SERIES} gauge points, {len(binary):,} B protobuf, {len(text):,} B JSON")
    print(f"  parse protobuf:                    {best_us(lambda: parse_request(binary, json=False), rounds)} µs")
    print(f"  parse JSON:                        {best_us(lambda: parse_request(text, json=True), rounds)} µs")
    whole = best_us(lambda: decode_metrics(request, now, 10**6), rounds)
    print(f"  decode_metrics:                    {whole} µs ({SERIES / whole * 1e6:,.0f} points/s)")


if __name__ == "__main__":
    main()
