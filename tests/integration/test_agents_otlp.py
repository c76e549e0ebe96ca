"""The OpenTelemetry Python SDK's OTLP/HTTP exporters (protobuf, and JSON where its pre-release installs) against
the server: every data point the SDK exported must be exactly what GET /metrics lists under the mapping of
docs/ingest.md (names, tags, values, timestamps to the millisecond)."""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Mapping
from typing import Any

import httpx
import pytest
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    ExponentialHistogram,
    Gauge,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
    Sum,
)
from opentelemetry.sdk.metrics.export import Histogram as HistogramData
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource

from tests.integration.agents import Row, listed

EXPORTERS = {
    "protobuf": "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "json": "opentelemetry.exporter.otlp.json.http.metric_exporter",
}


def exporter_class(encoding: str) -> Any:
    try:
        return importlib.import_module(EXPORTERS[encoding]).OTLPMetricExporter
    except ImportError as exc:
        pytest.skip(f"the OTLP/HTTP {encoding} exporter is not installed ({exc}): the dev extra installs it")


@pytest.mark.parametrize(("encoding", "temporality"), [("protobuf", "cumulative"), ("json", "delta")])
def test_the_sdk_exports_exactly_what_is_then_listed(
    client: httpx.Client, base_url: str, encoding: str, temporality: str
) -> None:
    service = f"otel-{uuid.uuid4().hex[:10]}"
    sent: list[tuple[MetricsData, MetricExportResult]] = []

    class Recording(exporter_class(encoding)):  # type: ignore[misc]
        def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> Any:
            result = super().export(metrics_data, timeout_millis, **kwargs)
            sent.append((metrics_data, result))
            return result

    delta = AggregationTemporality.DELTA if temporality == "delta" else AggregationTemporality.CUMULATIVE
    exporter = Recording(endpoint=f"{base_url}/v1/metrics", preferred_temporality={Counter: delta, Histogram: delta})
    provider = MeterProvider(
        resource=Resource.create({"service.name": service, "deployment.environment": "test"}),
        metric_readers=[PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)],
        views=[View(instrument_name="payload.size", aggregation=ExponentialBucketHistogramAggregation(max_size=20))],
    )
    meter = provider.get_meter("tests.agents", "1.2.3")
    orders = meter.create_counter("orders.placed")
    queue = meter.create_up_down_counter("queue.depth")
    latency = meter.create_histogram("http.server.duration", unit="ms")
    sizes = meter.create_histogram("payload.size", unit="By")
    load = meter.create_gauge("cpu.load")

    def temperature(options: CallbackOptions) -> list[Observation]:
        return [Observation(61.5, {"core": "0"}), Observation(58.25, {"core": "1"})]

    meter.create_observable_gauge("cpu.temperature", callbacks=[temperature])
    for round_ in range(2):  # two exports: cumulative points grow, delta points restart
        orders.add(3 + round_, {"shop": "north", "retry": True})
        orders.add(2, {"shop": "süd, 2"})
        queue.add(5 - 3 * round_)
        for value in (0.4, 3.5, 120, 7000.25):
            latency.record(value, {"route": "/a"})
        for value in (0.0, 1.5, 300.0, 5000.0):  # the SDK records no negative value in a histogram
            sizes.record(value)
        load.set(0.25 * (round_ + 1), {"host": "web-1"})
        assert provider.force_flush()
    provider.shutdown()

    assert len(sent) >= 2  # and one more at shutdown
    assert {result for _, result in sent} == {MetricExportResult.SUCCESS}
    expected = expected_rows(data for data, _ in sent)
    assert {name for name, *_ in expected} >= {"orders.placed", "http.server.duration.bucket", "payload.size.bucket"}
    assert listed(client, f"service.name:{service}") == expected


def expected_rows(exports: Any) -> set[Row]:
    """docs/ingest.md's mapping, restated: resource, then scope, then point attributes as tags (innermost wins);
    sums tagged with temporality and monotonicity; histograms as cumulative `.bucket`s with `le:` upper bounds,
    `.count`, `.sum`, `.min`, `.max`."""
    rows: set[Row] = set()
    for data in exports:
        for resource_metrics in data.resource_metrics:
            resource = text_attributes(resource_metrics.resource.attributes)
            for scope_metrics in resource_metrics.scope_metrics:
                scope = {"otel.scope.name": scope_metrics.scope.name, "otel.scope.version": scope_metrics.scope.version}
                for metric in scope_metrics.metrics:
                    points = metric.data
                    extra: dict[str, str] = {}
                    if isinstance(points, Sum | HistogramData | ExponentialHistogram):
                        delta = points.aggregation_temporality == AggregationTemporality.DELTA
                        extra["otel.temporality"] = "delta" if delta else "cumulative"
                    if isinstance(points, Sum):
                        extra["otel.monotonic"] = "true" if points.is_monotonic else "false"
                    for point in points.data_points:
                        pairs = {**resource, **scope, **text_attributes(point.attributes), **extra}
                        tags = tuple(sorted(f"{k}:{v}" for k, v in pairs.items() if v))
                        millis = point.time_unix_nano // 1_000_000
                        for suffix, more, value in readings(points, point):
                            name = f"{metric.name}.{suffix}" if suffix else metric.name
                            rows.add((name, tuple(sorted((*tags, *more))), millis, float(value)))
    return rows


def readings(points: Any, point: Any) -> list[tuple[str, tuple[str, ...], float]]:
    if isinstance(points, Gauge | Sum):
        return [("", (), point.value)]
    bounds: list[tuple[float, int]] = []
    if isinstance(points, HistogramData):
        bounds = list(zip(point.explicit_bounds, point.bucket_counts, strict=False))
    else:  # exponential: negative buckets (most negative first), zero, positive; each at its upper bound
        base = 2.0 ** (2.0**-point.scale)
        negative = point.negative
        for i in reversed(range(len(negative.bucket_counts))):
            bounds.append((-exponential_bound(point.scale, negative.offset + i, base), negative.bucket_counts[i]))
        bounds.append((0.0, point.zero_count))
        positive = point.positive
        for i, count in enumerate(positive.bucket_counts):
            bounds.append((exponential_bound(point.scale, positive.offset + i + 1, base), count))
    out: list[tuple[str, tuple[str, ...], float]] = []
    total = 0
    for bound, count in bounds:
        total += count
        out.append(("bucket", (f"le:{go_float(bound)}",), total))
    out.append(("bucket", ("le:+Inf",), point.count))
    out += [("count", (), point.count), ("sum", (), point.sum), ("min", (), point.min), ("max", (), point.max)]
    return out


def exponential_bound(scale: int, index: int, base: float) -> float:
    return 2.0 ** (index * 2**-scale) if scale <= 0 else 2.0 ** (index / 2**scale)


def go_float(number: float) -> str:
    return str(int(number)) if number.is_integer() else repr(number)


def text_attributes(attributes: Mapping[str, Any] | None) -> dict[str, str]:
    def text(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        return go_float(value) if isinstance(value, float) else str(value)

    return {key: text(value) for key, value in (attributes or {}).items()}
