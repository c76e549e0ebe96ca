"""InfluxDB's write API called in-process: /write, /api/v2/write, /ping, /query, their answers and their keys."""

from __future__ import annotations

import asyncio
import base64
import gzip
import zlib
from datetime import UTC, datetime

import orjson
import pytest

from telemetry_server.auth.guard import AccessGuard
from telemetry_server.auth.keys import Role
from telemetry_server.config import Settings
from telemetry_server.errors import AuthenticationRequired
from telemetry_server.http.request import Request
from telemetry_server.http.types import Message
from telemetry_server.routes.influx import InfluxResource, answer_influxql_get, is_influxql
from tests.fakes import InMemoryKeyStore, InMemoryTokenSource
from tests.unit.conftest import AppFactory, Harness
from tests.unit.test_app import assert_problem
from tests.unit.test_auth_guard import make_key

LINES = (
    b"cpu,host=web-1 usage_idle=97.5,usage_user=2i 1795773600000000000\nmem,host=web-1 free=1024i 1795773600000000000\n"
)


def stored(harness: Harness) -> list[tuple[str, tuple[str, ...], float, datetime]]:
    return sorted((m.name, m.tags, m.value, m.timestamp) for m in harness.store.metrics.values())


def test_v1_write_stores_every_field_and_answers_204(harness: Harness) -> None:
    reply = harness.client.post("/write", query="db=telegraf&precision=ns", body=LINES, content_type=None)

    assert reply.status == 204, reply.body
    assert reply.header("x-influxdb-version")
    moment = datetime(2026, 11, 27, 10, tzinfo=UTC)
    assert stored(harness) == [
        ("cpu.usage_idle", ("host:web-1",), 97.5, moment),
        ("cpu.usage_user", ("host:web-1",), 2.0, moment),
        ("mem.free", ("host:web-1",), 1024.0, moment),
    ]
    assert harness.cache.invalidations  # the same write path as JSON batches: caches told before the answer


def test_a_partial_write_stores_the_good_lines_and_answers_as_influxdb(harness: Harness) -> None:
    body = b'cpu v=1\ncpu v=\nmem v=2\nnet v=1,s="text"\n'
    reply = harness.client.post("/write", body=body, content_type="text/plain")

    assert reply.status == 400
    assert reply.header("content-type") == "application/json"
    error = reply.json()["error"]
    assert error == "partial write: unable to parse 'cpu v=': failed to parse value of field dropped=2"
    assert reply.header("x-influxdb-error") == error
    assert [name for name, *_ in stored(harness)] == ["cpu.v", "mem.v", "net.v"]


def test_v2_write_answers_in_v2_shape_and_reads_v2_precisions(harness: Harness) -> None:
    ok = harness.client.post("/api/v2/write", query="org=o&bucket=b&precision=s", body=b"m v=1 1795773600")
    assert ok.status == 204
    assert stored(harness)[0][3] == datetime(2026, 11, 27, 10, tzinfo=UTC)

    partial = harness.client.post("/api/v2/write", query="bucket=b", body=b"m v=1\nm v=x")
    assert partial.status == 400
    assert partial.json()["code"] == "invalid"
    assert partial.json()["message"].startswith("partial write: unable to parse 'm v=x'")

    bad = harness.client.post("/api/v2/write", query="precision=h", body=b"m v=1")
    assert_problem(bad, 422)


def test_ping_is_204_with_the_version_for_get_and_head(harness: Harness) -> None:
    for method in ("GET", "HEAD"):
        reply = harness.client.request(method, "/ping")
        assert reply.status == 204
        assert reply.header("x-influxdb-version")


def test_query_answers_create_database_in_the_url_or_a_form_body(harness: Harness) -> None:
    in_url = harness.client.post("/query", query="q=CREATE+DATABASE+%22telegraf%22", body=b"", content_type=None)
    assert in_url.status == 200
    assert in_url.json() == {"results": [{"statement_id": 0}]}

    form = harness.client.post("/query", body=b"q=CREATE+DATABASE+x", content_type="application/x-www-form-urlencoded")
    assert form.json() == {"results": [{"statement_id": 0}]}

    other = harness.client.post("/query", query="q=SELECT+*+FROM+cpu", body=b"")
    assert other.status == 400
    assert "read with GET /metrics" in other.json()["error"]


def test_get_query_with_q_is_influxql_answered_for_show_databases_only() -> None:
    shown = _request("/query", "q=show%20databases")
    assert is_influxql(shown)
    assert not is_influxql(_request("/query", "prompt=how+many+errors"))
    assert orjson.loads(answer_influxql_get(shown).body) == {
        "results": [
            {"statement_id": 0, "series": [{"name": "databases", "columns": ["name"], "values": [["telemetry"]]}]}
        ]
    }
    refused = answer_influxql_get(_request("/query", "q=CREATE+DATABASE+x"))
    assert refused.status == 400
    assert orjson.loads(refused.body) == {"error": "CREATE DATABASE is only allowed with POST"}


def test_gzipped_and_chunked_bodies_are_read(harness: Harness) -> None:
    packed = gzip.compress(LINES)
    reply = harness.client.post(
        "/write",
        chunks=[packed[:10], packed[10:]],
        content_type="text/plain",
        headers=[("content-encoding", "gzip")],
    )
    assert reply.status == 204, reply.body
    assert len(harness.store.metrics) == 3


def test_a_gzip_bomb_is_413_and_stores_nothing(make_app: AppFactory) -> None:
    harness = make_app(ingest_max_body_bytes=64 * 1024)
    squeezer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    bomb = squeezer.compress(b"m v=1\n" * 2_000_000) + squeezer.flush()  # 12 MB inflated, ~12 KB sent

    reply = harness.client.post("/write", body=bomb, headers=[("content-encoding", "gzip")])

    assert_problem(reply, 413)
    assert not harness.store.metrics


def test_more_points_than_ingest_max_points_is_413(make_app: AppFactory) -> None:
    harness = make_app(ingest_max_points=2)
    assert_problem(harness.client.post("/write", body=LINES), 413)
    assert not harness.store.metrics


def test_ingest_bodies_may_pass_max_body_bytes_up_to_their_own_limit(make_app: AppFactory) -> None:
    harness = make_app(max_body_bytes=1024, ingest_max_body_bytes=1 << 20)
    body = b"".join(b"m,i=%d v=1\n" % i for i in range(1000))
    assert harness.client.post("/write", body=body).status == 204
    assert len(harness.store.metrics) == 1000


def test_points_are_rate_limited_one_token_each(make_app: AppFactory) -> None:
    harness = make_app(rate_limit_per_second=10, rate_limit_burst=10, tokens=InMemoryTokenSource(10))
    body = b"".join(b"m v=%d\n" % i for i in range(20))

    reply = harness.client.post("/write", body=body)

    assert_problem(reply, 429)
    assert not harness.store.metrics


def _request(path: str, query: str = "", authorization: str | None = None) -> Request:
    headers = [] if authorization is None else [(b"authorization", authorization.encode())]

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    scope = {"type": "http", "method": "POST", "path": path, "query_string": query.encode(), "headers": headers}
    return Request(scope, receive, 1024)


@pytest.fixture
def guard() -> tuple[AccessGuard, InMemoryKeyStore]:
    store = InMemoryKeyStore()
    guard = AccessGuard(Settings(auth_enabled=True))
    guard.start(store, InfluxResource(object(), Settings()).routes())  # type: ignore[arg-type]
    return guard, store


def test_v1_keys_come_as_the_p_parameter_or_basic_and_v2_as_token(guard: tuple[AccessGuard, InMemoryKeyStore]) -> None:
    access, store = guard
    key = make_key(store, Role.WRITE)
    basic = "Basic " + base64.b64encode(f"telegraf:{key}".encode()).decode()
    for route, incoming in [
        ("influx_write_v1", _request("/write", f"db=x&u=telegraf&p={key}")),
        ("influx_write_v1", _request("/write", authorization=basic)),
        ("influx_query", _request("/query", f"p={key}")),
        ("influx_write_v2", _request("/api/v2/write", authorization=f"Token {key}")),
    ]:
        asyncio.run(access.authorize(incoming, route))


def test_the_p_parameter_is_read_only_where_the_route_says(guard: tuple[AccessGuard, InMemoryKeyStore]) -> None:
    access, store = guard
    key = make_key(store, Role.WRITE)
    with pytest.raises(AuthenticationRequired):
        asyncio.run(access.authorize(_request("/api/v2/write", f"p={key}"), "influx_write_v2"))
    with pytest.raises(AuthenticationRequired):
        asyncio.run(access.authorize(_request("/write", "u=root&p=root"), "influx_write_v1"))
