"""OTLP/HTTP metrics: an `ExportMetricsServiceRequest` (protobuf or OTLP's JSON) decoded into metrics, and the
`ExportMetricsServiceResponse` that answers it. The messages are opentelemetry-proto's.

Tags of a point are its resource's attributes, then its scope's (`otel.scope.name`, `otel.scope.version` and the
scope's attributes), then its own: where two give the same key, the innermost wins (docs/ingest.md).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsPartialSuccess,
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

from telemetry_server.errors import BadRequest, PayloadTooLarge, excerpt
from telemetry_server.ingest.naming import IngestOutcome, NameRefused, metric_name, tag_set
from telemetry_server.models.metric import MetricInput
from telemetry_server.models.timestamps import EARLIEST, truncate_to_millis

_NO_RECORDED_VALUE = 1  # DataPointFlags.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK
_TEMPORALITY = {
    AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE: "cumulative",
    AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA: "delta",
}
Pairs = dict[str, str]


class _Refused(Exception):
    """One data point that cannot be stored; the message says why."""


def parse_request(body: bytes, json: bool) -> Any:
    """The request from protobuf, or from OTLP's JSON (its unknown fields ignored, as OTLP requires)."""
    try:
        if json:
            return json_format.Parse(body, ExportMetricsServiceRequest(), ignore_unknown_fields=True)
        return ExportMetricsServiceRequest.FromString(body)
    except (DecodeError, json_format.ParseError, UnicodeDecodeError, ValueError) as exc:
        kind = "OTLP JSON" if json else "protobuf"
        raise BadRequest(f"the body is not an ExportMetricsServiceRequest in {kind}: {excerpt(str(exc))}") from None


def decode_metrics(request: Any, now: datetime, max_points: int) -> tuple[list[MetricInput], IngestOutcome]:
    """Every data point as one metric or more (see `_POINT_READERS`); refused points are counted, not raised.
    413 once the metrics would pass `max_points`."""
    decoder = _Decoder(now, max_points)
    for resource_metrics in request.resource_metrics:
        resource = attribute_pairs(resource_metrics.resource.attributes)
        for scope_metrics in resource_metrics.scope_metrics:
            scope = scope_metrics.scope
            inherited = {**resource, "otel.scope.name": scope.name, "otel.scope.version": scope.version}
            inherited.update(attribute_pairs(scope.attributes))
            for metric in scope_metrics.metrics:
                decoder.metric(metric, inherited)
    return decoder.metrics, IngestOutcome(decoder.accepted, decoder.refused, decoder.first_refusal)


class _Decoder:
    __slots__ = ("accepted", "first_refusal", "max_points", "metrics", "now", "refused")

    def __init__(self, now: datetime, max_points: int) -> None:
        self.now = truncate_to_millis(now)
        self.max_points = max_points
        self.metrics: list[MetricInput] = []
        self.accepted = 0
        self.refused = 0
        self.first_refusal: str | None = None

    def metric(self, metric: Any, inherited: Pairs) -> None:
        kind = metric.WhichOneof("data")
        if kind is None:
            return  # no data: nothing to store, nothing refused
        data = getattr(metric, kind)
        extra: Pairs = {}
        if kind in ("sum", "histogram", "exponential_histogram"):
            extra["otel.temporality"] = _TEMPORALITY.get(data.aggregation_temporality, "unspecified")
        if kind == "sum":
            extra["otel.monotonic"] = "true" if data.is_monotonic else "false"
        reader = _POINT_READERS[kind]
        for point in data.data_points:
            if point.flags & _NO_RECORDED_VALUE:
                continue  # the SDK says there is no value: a gap, not a refusal
            try:
                tags = tag_set({**inherited, **attribute_pairs(point.attributes), **extra}.items())
                timestamp = self._timestamp(point.time_unix_nano)
                readings = reader(point)
                names = {suffix: metric_name(metric.name, suffix) for suffix, _, _ in readings}
            except (_Refused, NameRefused) as exc:
                self._refuse(f"{excerpt(metric.name)}: {exc}")
                continue
            if len(self.metrics) + len(readings) > self.max_points:
                raise PayloadTooLarge(f"a request holds at most {self.max_points} points (INGEST_MAX_POINTS)")
            self.metrics += [
                MetricInput(names[suffix], tuple(sorted((*tags, *more))) if more else tags, value, timestamp)
                for suffix, more, value in readings
            ]
            self.accepted += 1

    def _timestamp(self, unix_nano: int) -> datetime:
        """Milliseconds, as every timestamp here is kept; an unset time (0) is the time of arrival."""
        if not unix_nano:
            return self.now
        return EARLIEST + timedelta(milliseconds=unix_nano // 1_000_000)

    def _refuse(self, reason: str) -> None:
        if self.first_refusal is None:
            self.first_refusal = reason
        self.refused += 1


# A reading: (name suffix, extra tags, value). One OTLP point becomes one reading (gauge, sum) or several.
Reading = tuple[str, tuple[str, ...], float]


def _number(point: Any) -> list[Reading]:
    which = point.WhichOneof("value")
    if which is None:
        raise _Refused("a data point without a value")
    return [("", (), _finite(point.as_double if which == "as_double" else point.as_int))]


def _histogram(point: Any) -> list[Reading]:
    """Prometheus' shape: `.bucket` with `le:` cumulative counts (`le:+Inf` is the count), `.count`, `.sum`,
    and `.min` / `.max` when the point has them."""
    bounds = point.explicit_bounds
    counts = point.bucket_counts
    if counts and len(counts) != len(bounds) + 1:
        raise _Refused(f"{len(counts)} bucket counts for {len(bounds)} bounds (there must be one more)")
    readings: list[Reading] = []
    total = 0
    for bound, count in zip(bounds, counts, strict=False):
        total += count
        readings.append(("bucket", (f"le:{format_number(_finite(bound))}",), float(total)))
    readings.append(("bucket", ("le:+Inf",), float(point.count)))
    return readings + _totals(point)


def _exponential_histogram(point: Any) -> list[Reading]:
    """The same shape as `_histogram`, each bucket's upper bound as its `le:`: negative buckets (most negative
    first), the zero bucket (`le:` its threshold), then the positive ones. A bucket of index i spans
    (base^i, base^(i+1)] with base = 2^(2^-scale)."""
    scale = point.scale
    readings: list[Reading] = []
    total = 0
    negative = point.negative
    for position in reversed(range(len(negative.bucket_counts))):
        total += negative.bucket_counts[position]
        bound = -_power(scale, negative.offset + position)
        readings.append(("bucket", (f"le:{format_number(bound)}",), float(total)))
    total += point.zero_count
    readings.append(("bucket", (f"le:{format_number(point.zero_threshold)}",), float(total)))
    positive = point.positive
    for position, count in enumerate(positive.bucket_counts):
        total += count
        bound = _power(scale, positive.offset + position + 1)
        readings.append(("bucket", (f"le:{format_number(bound)}",), float(total)))
    readings.append(("bucket", ("le:+Inf",), float(point.count)))
    return readings + _totals(point)


def _power(scale: int, index: int) -> float:
    """base^index for base = 2^(2^-scale), exact where scale <= 0 (a power of two)."""
    try:
        return math.ldexp(1.0, index << -scale) if scale <= 0 else 2.0 ** (index / (1 << scale))
    except OverflowError:
        raise _Refused(f"bucket {index} at scale {scale} is beyond a float") from None


def _summary(point: Any) -> list[Reading]:
    """Prometheus' shape: the metric itself with a `quantile:` tag per quantile, `.count` and `.sum`."""
    readings: list[Reading] = [
        ("", (f"quantile:{format_number(q.quantile)}",), _finite(q.value)) for q in point.quantile_values
    ]
    return [*readings, ("count", (), float(point.count)), ("sum", (), _finite(point.sum))]


def _totals(point: Any) -> list[Reading]:
    readings: list[Reading] = [("count", (), float(point.count))]
    for field in ("sum", "min", "max"):
        if point.HasField(field):
            readings.append((field, (), _finite(getattr(point, field))))
    return readings


def _finite(value: float) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise _Refused(f"the value {value} is not stored (values are finite numbers)")
    return number


_POINT_READERS: dict[str, Callable[[Any], list[Reading]]] = {
    "gauge": _number,
    "sum": _number,
    "histogram": _histogram,
    "exponential_histogram": _exponential_histogram,
    "summary": _summary,
}


def format_number(number: float) -> str:
    """A bound or quantile as Go (Prometheus, the OpenTelemetry Collector) writes it: `10`, `0.25`, `1e+21`."""
    if number.is_integer() and abs(number) < 1e21:
        return str(int(number))
    text = repr(number)
    if "e" in text:
        mantissa, exponent = text.split("e")
        return f"{mantissa}e{'+' if not exponent.startswith('-') else '-'}{abs(int(exponent)):02d}"
    return text


def attribute_pairs(attributes: Iterable[Any]) -> Pairs:
    """OTLP KeyValues as text: strings as they are, booleans `true`/`false`, numbers in decimal, bytes in
    base64, arrays and key-value lists as compact JSON."""
    return {attribute.key: _text(attribute.value) for attribute in attributes}


def _text(value: Any) -> str:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return str(value.string_value)
    if kind is None:
        return ""
    return orjson.dumps(_plain(value)).decode() if kind in ("array_value", "kvlist_value") else str(_plain(value))


def _plain(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "double_value":
        return format_number(value.double_value) if math.isfinite(value.double_value) else str(value.double_value)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    if kind == "array_value":
        return [_plain(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {item.key: _plain(item.value) for item in value.kvlist_value.values}
    return getattr(value, kind) if kind is not None else None


def export_response(outcome: IngestOutcome, json: bool) -> bytes:
    """The ExportMetricsServiceResponse: `partial_success` only when points were refused (OTLP's rule)."""
    if json:
        if not outcome.refused:
            return b"{}"
        partial = {"rejectedDataPoints": str(outcome.refused), "errorMessage": outcome.first_refusal or ""}
        return orjson.dumps({"partialSuccess": partial})
    response = ExportMetricsServiceResponse()
    if outcome.refused:
        response.partial_success.CopyFrom(
            ExportMetricsPartialSuccess(rejected_data_points=outcome.refused, error_message=outcome.first_refusal or "")
        )
    return bytes(response.SerializeToString())


def status_body(message: str, json: bool) -> bytes:
    """A failure's body: google.rpc.Status with its message (OTLP leaves `code` out of its use, so it is)."""
    if json:
        return orjson.dumps({"message": message})
    return bytes(Status(message=message).SerializeToString())
