"""remote_write 1.0 decoding (pure), and POST /api/v1/write on the app with in-memory backends."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import cramjam
import pytest

from telemetry_server.errors import BadRequest, PayloadTooLarge
from telemetry_server.ingest.remote_write import (
    STALE_MARKER,
    Label,
    WriteRequest,
    decode_write_request,
    decompress_snappy,
)
from tests.asgi import Reply
from tests.unit.conftest import AppFactory, Harness

T0 = 1_764_320_000_123  # 2025-11-28T08:53:20.123Z


def write_request(*series: tuple[dict[str, str], list[tuple[float, int]]]) -> bytes:
    message = WriteRequest()
    for labels, samples in series:
        added = message.timeseries.add()
        for name in sorted(labels):
            added.labels.append(Label(name=name, value=labels[name]).SerializeToString())
        for value, timestamp in samples:
            added.samples.add(value=value, timestamp=timestamp)
    return bytes(message.SerializeToString())


def snappy(data: bytes) -> bytes:
    return bytes(cramjam.snappy.compress_raw(data))


def at(millis: int) -> datetime:
    return datetime.fromtimestamp(millis / 1000, UTC)


# Decoding


def test_each_sample_becomes_a_metric_named_by_its_name_label_with_the_others_as_tags() -> None:
    data = write_request(
        ({"__name__": "http_requests_total", "job": "api", "code": "200"}, [(3.0, T0), (5.0, T0 + 1000)]),
        ({"__name__": "up", "instance": "localhost:9090"}, [(1.0, T0)]),
    )

    points, outcome = decode_write_request(data, 100)

    assert [(p.name, p.tags, p.value, p.timestamp) for p in points] == [
        ("http_requests_total", ("code:200", "job:api"), 3.0, at(T0)),
        ("http_requests_total", ("code:200", "job:api"), 5.0, at(T0 + 1000)),
        ("up", ("instance:localhost:9090",), 1.0, at(T0)),
    ]
    assert (outcome.accepted, outcome.refused) == (3, 0)


def test_classic_histogram_series_keep_their_prometheus_names_and_le_label() -> None:
    data = write_request(({"__name__": "rpc_seconds_bucket", "le": "+Inf"}, [(7.0, T0)]))

    points, _ = decode_write_request(data, 100)

    assert (points[0].name, points[0].tags) == ("rpc_seconds_bucket", ("le:+Inf",))


def test_stale_markers_end_a_series_and_are_neither_stored_nor_refused() -> None:
    data = write_request(({"__name__": "up"}, [(1.0, T0), (STALE_MARKER, T0 + 1000)]))

    points, outcome = decode_write_request(data, 100)

    assert [p.value for p in points] == [1.0]
    assert outcome.refused == 0


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_other_non_finite_values_are_refused_and_the_rest_kept(value: float) -> None:
    data = write_request(({"__name__": "q", "quantile": "0.5"}, [(value, T0), (2.0, T0 + 1)]))

    points, outcome = decode_write_request(data, 100)

    assert [p.value for p in points] == [2.0]
    assert outcome.refused == 1
    assert outcome.first_refusal is not None
    assert "finite" in outcome.first_refusal


def test_a_series_without_a_name_or_with_too_many_labels_is_refused_whole() -> None:
    too_many = {"__name__": "wide", **{f"l{i}": "v" for i in range(65)}}
    data = write_request(
        ({"job": "x"}, [(1.0, T0), (2.0, T0 + 1)]), (too_many, [(1.0, T0)]), ({"__name__": "ok"}, [(1.0, T0)])
    )

    points, outcome = decode_write_request(data, 100)

    assert [p.name for p in points] == ["ok"]
    assert outcome.refused == 3
    assert outcome.first_refusal is not None
    assert "no __name__" in outcome.first_refusal


def test_names_and_labels_go_through_the_shared_naming_rule() -> None:
    data = write_request(({"__name__": "système:load", "path": "/a\nb", "empty": ""}, [(1.0, T0)]))

    points, _ = decode_write_request(data, 100)

    assert (points[0].name, points[0].tags) == ("syst_me:load", ("path:/a_b",))


def test_timestamps_before_1970_are_refused() -> None:
    _, outcome = decode_write_request(write_request(({"__name__": "old"}, [(1.0, -1)])), 100)

    assert outcome.refused == 1


def test_more_samples_than_the_limit_is_413() -> None:
    data = write_request(({"__name__": "many"}, [(1.0, T0 + i) for i in range(11)]))

    with pytest.raises(PayloadTooLarge):
        decode_write_request(data, 10)


def test_a_body_that_is_not_a_write_request_is_400() -> None:
    with pytest.raises(BadRequest):
        decode_write_request(b"\xff\xff\xff", 100)


def test_snappy_blocks_are_decoded_within_the_limit() -> None:
    data = write_request(({"__name__": "up"}, [(1.0, T0)]))

    assert decompress_snappy(snappy(data), len(data)) == data
    with pytest.raises(PayloadTooLarge):
        decompress_snappy(snappy(data), len(data) - 1)


def test_a_snappy_bomb_is_refused_from_its_length_header_without_decoding() -> None:
    bomb = snappy(b"\0" * 10_000_000)  # ~470 KiB that would inflate to 10 MB

    with pytest.raises(PayloadTooLarge, match="10000000 bytes"):
        decompress_snappy(bomb, 1_000_000)


@pytest.mark.parametrize("body", [b"", b"\xff\xff\xff\xff\xff\xff", b"\x10not snappy at all"])
def test_a_body_that_is_not_snappy_is_400(body: bytes) -> None:
    with pytest.raises(BadRequest):
        decompress_snappy(body, 1000)


# The endpoint


def post(harness: Harness, body: bytes, **headers: str) -> Reply:
    sent = {"content-encoding": "snappy", "x-prometheus-remote-write-version": "0.1.0", **headers}
    content_type = sent.pop("content-type", "application/x-protobuf")
    return harness.client.post("/api/v1/write", body=body, content_type=content_type, headers=list(sent.items()))


def stored(harness: Harness) -> list[tuple[str, tuple[str, ...], float]]:
    return sorted((m.name, m.tags, m.value) for m in harness.store.metrics.values())


def test_a_write_is_stored_and_answered_204(harness: Harness) -> None:
    reply = post(harness, snappy(write_request(({"__name__": "up", "job": "p"}, [(1.0, T0)]))))

    assert reply.status == 204, reply.body
    assert reply.body == b""
    assert stored(harness) == [("up", ("job:p",), 1.0)]


def test_a_body_sent_without_content_encoding_is_still_read_as_snappy(harness: Harness) -> None:
    reply = post(harness, snappy(write_request(({"__name__": "up"}, [(1.0, T0)]))), **{"content-encoding": ""})

    assert reply.status == 204, reply.body


def test_refused_samples_are_a_400_that_names_them_once_the_others_are_stored(harness: Harness) -> None:
    body = snappy(write_request(({"__name__": "up"}, [(math.nan, T0), (1.0, T0 + 1)])))

    reply = post(harness, body)

    assert reply.status == 400
    problem: dict[str, Any] = reply.json()
    assert (problem["stored"], problem["refused"]) == (1, 1)
    assert "finite" in problem["detail"]
    assert stored(harness) == [("up", (), 1.0)]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"content-type": "application/json"}, 415),
        ({"content-type": "application/x-protobuf;proto=io.prometheus.write.v2.Request"}, 415),
        ({"content-encoding": "gzip"}, 415),
    ],
)
def test_what_is_not_remote_write_1_0_is_refused(harness: Harness, headers: dict[str, str], status: int) -> None:
    reply = post(harness, snappy(write_request(({"__name__": "up"}, [(1.0, T0)]))), **headers)

    assert reply.status == status
    assert stored(harness) == []


def test_a_body_past_the_ingest_limit_is_413_after_decompression(make_app: AppFactory) -> None:
    harness = make_app(ingest_max_body_bytes=2048)
    body = snappy(write_request(({"__name__": "up", "blob": "x" * 150}, [(1.0, T0 + i) for i in range(200)])))
    assert len(body) < 2048

    reply = post(harness, body)

    assert reply.status == 413
    assert stored(harness) == []


def test_storage_down_is_503_so_that_the_sender_retries(make_app: AppFactory) -> None:
    from tests.fakes import UnreachableMetricStore

    harness = make_app(store=UnreachableMetricStore())

    reply = post(harness, snappy(write_request(({"__name__": "up"}, [(1.0, T0)]))))

    assert reply.status == 503
    assert reply.header("retry-after") == "1"


def test_a_label_that_is_not_a_label_message_refuses_its_series() -> None:
    message = WriteRequest()
    series = message.timeseries.add()
    series.labels.append(b"\xff\xff")
    series.samples.add(value=1.0, timestamp=T0)

    points, outcome = decode_write_request(bytes(message.SerializeToString()), 100)

    assert (points, outcome.refused) == ([], 1)


def test_a_series_seen_again_maps_the_same() -> None:
    data = write_request(({"__name__": "up", "job": "p"}, [(1.0, T0)]))

    first, _ = decode_write_request(data, 100)
    again, _ = decode_write_request(data, 100)

    assert first == again
