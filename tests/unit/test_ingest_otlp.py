"""OTLP metrics decoding (pure), and POST /v1/metrics on the app with in-memory backends."""

from __future__ import annotations

import gzip
import math
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from google.protobuf import json_format
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality, Metric

from telemetry_server.errors import BadRequest, PayloadTooLarge
from telemetry_server.ingest.otlp import attribute_pairs, decode_metrics, format_number, parse_request
from tests.asgi import Reply
from tests.unit.conftest import AppFactory, Harness

T0_NS = 1_764_320_000_123_456_789
T0 = datetime(2025, 11, 28, 8, 53, 20, 123000, tzinfo=UTC)
NOW = datetime(2026, 1, 1, tzinfo=UTC)
CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
DELTA = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
SCOPE_TAGS = ("otel.scope.name:app", "otel.scope.version:1.0")


def attributes(**values: Any) -> list[KeyValue]:
    out = []
    for key, value in values.items():
        if isinstance(value, bool):
            any_value = AnyValue(bool_value=value)
        elif isinstance(value, int):
            any_value = AnyValue(int_value=value)
        elif isinstance(value, float):
            any_value = AnyValue(double_value=value)
        elif isinstance(value, list):
            any_value = AnyValue(array_value=ArrayValue(values=[AnyValue(string_value=v) for v in value]))
        else:
            any_value = AnyValue(string_value=value)
        out.append(KeyValue(key=key, value=any_value))
    return out


def export(*metrics: Metric, resource: dict[str, Any] | None = None) -> Any:
    request = ExportMetricsServiceRequest()
    resource_metrics = request.resource_metrics.add()
    resource_metrics.resource.attributes.extend(
        attributes(**(resource if resource is not None else {"service.name": "shop"}))
    )
    scope_metrics = resource_metrics.scope_metrics.add()
    scope_metrics.scope.name, scope_metrics.scope.version = "app", "1.0"
    scope_metrics.metrics.extend(metrics)
    return request


def gauge(name: str, *values: float | int, flags: int = 0, **attrs: Any) -> Metric:
    metric = Metric(name=name)
    for value in values:
        point = metric.gauge.data_points.add(time_unix_nano=T0_NS, flags=flags)
        point.attributes.extend(attributes(**attrs))
        if isinstance(value, int):
            point.as_int = value
        else:
            point.as_double = value
    return metric


def rows(request: Any, max_points: int = 1000) -> list[tuple[str, tuple[str, ...], float]]:
    points, _ = decode_metrics(request, NOW, max_points)
    return [(p.name, p.tags, p.value) for p in points]


# Decoding


def test_a_gauge_point_becomes_one_metric_with_resource_scope_and_point_attributes_as_tags() -> None:
    points, outcome = decode_metrics(export(gauge("cpu.load", 0.5, 7, host="web-1")), NOW, 100)

    tags = ("host:web-1", *SCOPE_TAGS, "service.name:shop")
    assert [(p.name, p.tags, p.value, p.timestamp) for p in points] == [
        ("cpu.load", tags, 0.5, T0),
        ("cpu.load", tags, 7.0, T0),
    ]
    assert (outcome.accepted, outcome.refused) == (2, 0)


def test_the_innermost_attribute_wins_a_key_given_twice() -> None:
    request = export(gauge("g", 1.0, env="point"), resource={"env": "resource", "otel.scope.name": "x"})

    assert rows(request) == [("g", ("env:point", *SCOPE_TAGS), 1.0)]


def test_sums_carry_their_temporality_and_monotonicity() -> None:
    counter = Metric(name="requests")
    counter.sum.aggregation_temporality, counter.sum.is_monotonic = DELTA, True
    counter.sum.data_points.add(time_unix_nano=T0_NS, as_int=3)
    updown = Metric(name="queue")
    updown.sum.aggregation_temporality = CUMULATIVE
    updown.sum.data_points.add(time_unix_nano=T0_NS, as_double=-2.5)

    found = rows(export(counter, updown, resource={}))

    assert found == [
        ("requests", ("otel.monotonic:true", *SCOPE_TAGS, "otel.temporality:delta"), 3.0),
        ("queue", ("otel.monotonic:false", *SCOPE_TAGS, "otel.temporality:cumulative"), -2.5),
    ]


def test_a_histogram_becomes_cumulative_le_buckets_count_sum_min_and_max() -> None:
    metric = Metric(name="latency")
    metric.histogram.aggregation_temporality = CUMULATIVE
    metric.histogram.data_points.add(
        time_unix_nano=T0_NS,
        count=6,
        sum=4.5,
        min=0.1,
        max=3.0,
        explicit_bounds=[0.25, 1, 2.5],
        bucket_counts=[1, 2, 0, 3],
    )

    found = [(name, [t for t in tags if t.startswith("le:")], value) for name, tags, value in rows(export(metric))]

    assert found == [
        ("latency.bucket", ["le:0.25"], 1.0),
        ("latency.bucket", ["le:1"], 3.0),
        ("latency.bucket", ["le:2.5"], 3.0),
        ("latency.bucket", ["le:+Inf"], 6.0),
        ("latency.count", [], 6.0),
        ("latency.sum", [], 4.5),
        ("latency.min", [], 0.1),
        ("latency.max", [], 3.0),
    ]


def test_an_exponential_histogram_becomes_le_buckets_at_its_bucket_upper_bounds() -> None:
    metric = Metric(name="size")
    metric.exponential_histogram.aggregation_temporality = DELTA
    point = metric.exponential_histogram.data_points.add(time_unix_nano=T0_NS, count=7, sum=20.0, scale=0, zero_count=1)
    point.positive.offset, point.positive.bucket_counts[:] = 1, [2, 3]  # (2, 4] and (4, 8]
    point.negative.offset, point.negative.bucket_counts[:] = 0, [1]  # [-2, -1)

    found = [(name, [t for t in tags if t.startswith("le:")], value) for name, tags, value in rows(export(metric))]

    assert found == [
        ("size.bucket", ["le:-1"], 1.0),
        ("size.bucket", ["le:0"], 2.0),
        ("size.bucket", ["le:4"], 4.0),
        ("size.bucket", ["le:8"], 7.0),
        ("size.bucket", ["le:+Inf"], 7.0),
        ("size.count", [], 7.0),
        ("size.sum", [], 20.0),
    ]


def test_a_summary_becomes_quantile_tagged_values_count_and_sum() -> None:
    metric = Metric(name="rpc")
    point = metric.summary.data_points.add(time_unix_nano=T0_NS, count=10, sum=2.0)
    point.quantile_values.add(quantile=0.5, value=0.1)
    point.quantile_values.add(quantile=0.99, value=0.9)

    found = [(n, [t for t in tags if t.startswith("quantile:")], v) for n, tags, v in rows(export(metric))]

    assert found == [
        ("rpc", ["quantile:0.5"], 0.1),
        ("rpc", ["quantile:0.99"], 0.9),
        ("rpc.count", [], 10.0),
        ("rpc.sum", [], 2.0),
    ]


def test_non_finite_values_refuse_their_point_and_the_rest_is_kept() -> None:
    points, outcome = decode_metrics(export(gauge("g", math.nan, 1.0)), NOW, 100)

    assert [p.value for p in points] == [1.0]
    assert (outcome.accepted, outcome.refused) == (1, 1)
    assert outcome.first_refusal is not None
    assert "finite" in outcome.first_refusal


def test_points_flagged_without_a_recorded_value_are_skipped_not_refused() -> None:
    points, outcome = decode_metrics(export(gauge("g", 1.0, flags=1)), NOW, 100)

    assert (points, outcome.refused) == ([], 0)


def test_a_point_without_a_time_takes_the_time_of_arrival() -> None:
    metric = Metric(name="g")
    metric.gauge.data_points.add(as_double=1.0)

    points, _ = decode_metrics(export(metric), NOW, 100)

    assert points[0].timestamp == NOW


def test_attribute_values_of_every_kind_become_text() -> None:
    pairs = attribute_pairs(attributes(s="a b", b=True, i=-3, d=0.25, a=["x", "y"]))

    assert pairs == {"s": "a b", "b": "true", "i": "-3", "d": "0.25", "a": '["x","y"]'}


@pytest.mark.parametrize(("number", "text"), [(10.0, "10"), (0.25, "0.25"), (1e21, "1e+21"), (1.5e-07, "1.5e-07")])
def test_bounds_are_written_as_go_writes_them(number: float, text: str) -> None:
    assert format_number(number) == text


def test_more_metrics_than_the_limit_is_413() -> None:
    with pytest.raises(PayloadTooLarge):
        decode_metrics(export(gauge("g", *[1.0] * 11)), NOW, 10)


def test_json_is_read_as_otlp_writes_it() -> None:
    body = json_format.MessageToJson(export(gauge("g", 2.0))).encode()

    assert [(p.name, p.value) for p in decode_metrics(parse_request(body, json=True), NOW, 10)[0]] == [("g", 2.0)]


@pytest.mark.parametrize(
    ("body", "json"), [(b"\xff\xff", False), (b"{not json", True), (b'{"resourceMetrics": 3}', True)]
)
def test_a_body_that_is_not_a_request_is_400(body: bytes, json: bool) -> None:
    with pytest.raises(BadRequest):
        parse_request(body, json)


# The endpoint


def post(harness: Harness, body: bytes, content_type: str = "application/x-protobuf", **headers: str) -> Reply:
    return harness.client.post("/v1/metrics", body=body, content_type=content_type, headers=list(headers.items()))


def stored(harness: Harness) -> list[tuple[str, float]]:
    return sorted((m.name, m.value) for m in harness.store.metrics.values())


def test_protobuf_is_answered_with_an_empty_protobuf_response(harness: Harness) -> None:
    reply = post(harness, export(gauge("g", 1.0)).SerializeToString())

    assert reply.status == 200, reply.body
    assert reply.header("content-type") == "application/x-protobuf"
    assert not ExportMetricsServiceResponse.FromString(reply.body).HasField("partial_success")
    assert stored(harness) == [("g", 1.0)]


def test_gzipped_json_is_answered_in_json_with_partial_success(harness: Harness) -> None:
    body = gzip.compress(json_format.MessageToJson(export(gauge("g", math.inf, 2.0))).encode())

    reply = post(harness, body, "application/json", **{"content-encoding": "gzip"})

    assert reply.status == 200, reply.body
    assert reply.header("content-type") == "application/json"
    partial = reply.json()["partialSuccess"]
    assert partial["rejectedDataPoints"] == "1"
    assert "finite" in partial["errorMessage"]
    assert stored(harness) == [("g", 2.0)]


def test_a_protobuf_partial_success_counts_the_refused_points(harness: Harness) -> None:
    reply = post(harness, export(gauge("g", math.nan)).SerializeToString())

    assert ExportMetricsServiceResponse.FromString(reply.body).partial_success.rejected_data_points == 1


def test_errors_are_a_status_message_in_the_request_content_type(harness: Harness) -> None:
    protobuf = post(harness, b"\xff\xff")
    json = post(harness, b"{nope", "application/json")

    assert (protobuf.status, protobuf.header("content-type")) == (400, "application/x-protobuf")
    assert "ExportMetricsServiceRequest" in Status.FromString(protobuf.body).message
    assert (json.status, json.header("content-type")) == (400, "application/json")
    assert "ExportMetricsServiceRequest" in orjson.loads(json.body)["message"]


def test_another_content_type_is_415(harness: Harness) -> None:
    reply = post(harness, b"x", "text/plain")

    assert reply.status == 415
    assert Status.FromString(reply.body).message


def test_a_gzip_bomb_is_413(make_app: AppFactory) -> None:
    harness = make_app(ingest_max_body_bytes=64 * 1024)

    reply = post(harness, gzip.compress(b"\0" * 10_000_000), **{"content-encoding": "gzip"})

    assert reply.status == 413
    assert stored(harness) == []
