"""The ASGI App called directly, on in-memory backends: lifespan, routing, every error status, CRUD."""

from __future__ import annotations

import asyncio
import gzip
import logging
import re
from typing import Any

import orjson
import pytest

from telemetry_server.app import App, Backends
from telemetry_server.config import Settings
from telemetry_server.errors import StorageUnavailable
from telemetry_server.services.stats_records import Stats
from tests.asgi import Lifespan, Reply
from tests.fakes import InMemoryMetricStore, InMemoryQueryCache, InMemoryTokenSource, UnreachableMetricStore
from tests.unit.conftest import AppFactory, Harness

METRIC = {"name": "cpu.load", "tags": ["host:web-1"], "value": 0.5, "timestamp": "2026-11-27T10:00:00Z"}
POINT_ID = re.compile(r"^[0-9a-f]{36}$")


def assert_problem(reply: Reply, status: int) -> dict[str, Any]:
    assert reply.status == status, reply.body
    assert reply.header("content-type") == "application/problem+json"
    assert reply.header("content-length") == str(len(reply.body))
    problem: dict[str, Any] = reply.json()
    assert problem["status"] == status
    assert problem["title"]
    assert problem["detail"]
    assert problem["type"].startswith("/problems/")
    assert problem["request_id"]
    return problem


def create(harness: Harness, **fields: Any) -> dict[str, Any]:
    reply = harness.client.post("/metrics", json={**METRIC, **fields})
    assert reply.status == 201, reply.body
    body: dict[str, Any] = reply.json()
    return body


# Lifespan


def test_lifespan_startup_opens_backends_and_ensures_indexes(harness: Harness, runner: asyncio.Runner) -> None:
    runner.run(asyncio.sleep(0))  # let the background index task take its turn

    assert harness.store.indexes_ensured == 1
    assert harness.client.get("/healthz").status == 200


def test_lifespan_shutdown_closes_backends(harness: Harness, runner: asyncio.Runner) -> None:
    answer = runner.run(harness.lifespan.shutdown())

    assert answer == {"type": "lifespan.shutdown.complete"}
    assert harness.store.closed
    assert harness.cache.closed
    assert_problem(harness.client.get("/healthz"), 503)


def test_startup_failure_is_reported_to_the_server(runner: asyncio.Runner) -> None:
    async def refuse(_: Settings, __: Stats) -> Any:
        raise RuntimeError("no database for you")

    answer = runner.run(Lifespan(App(Settings(), refuse)).startup())

    assert answer == {"type": "lifespan.startup.failed", "message": "no database for you"}


def test_requests_before_startup_are_503(make_app: AppFactory) -> None:
    harness = make_app(start=False)

    reply = harness.client.get("/metrics")

    assert_problem(reply, 503)
    assert reply.header("retry-after") == "1"


def test_shutdown_stops_retrying_indexes_while_mongo_is_down(make_app: AppFactory, runner: asyncio.Runner) -> None:
    harness = make_app(store=UnreachableMetricStore())
    runner.run(asyncio.sleep(0))

    runner.run(harness.lifespan.shutdown())

    assert harness.store.indexes_ensured == 0
    assert harness.store.closed


class RecordingUpkeep:
    def __init__(self) -> None:
        self.periods: list[float] = []
        self.cancelled = False

    async def run_periodically(self, period_seconds: float) -> None:
        self.periods.append(period_seconds)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise


@pytest.mark.parametrize(("period", "started"), [(60, [60]), (0, [])])
def test_upkeep_runs_in_the_background_at_its_period_until_shutdown(
    runner: asyncio.Runner, period: int, started: list[float]
) -> None:
    upkeep = RecordingUpkeep()
    backends = Backends(InMemoryMetricStore(), InMemoryQueryCache(), InMemoryTokenSource(), upkeep=upkeep)

    async def open_fakes(_: Settings, __: Stats) -> Backends:
        return backends

    lifespan = Lifespan(App(Settings(upkeep_period_seconds=period), open_fakes))
    runner.run(lifespan.startup())
    runner.run(asyncio.sleep(0))

    assert upkeep.periods == started
    runner.run(lifespan.shutdown())
    assert upkeep.cancelled == bool(started)


# Health


def test_healthz(harness: Harness) -> None:
    reply = harness.client.get("/healthz")

    assert reply.status == 200
    assert reply.json() == {"status": "ok"}


def test_readyz_reports_both_backends(harness: Harness) -> None:
    reply = harness.client.get("/readyz")

    assert reply.status == 200
    assert reply.json() == {"status": "ready", "mongo": "up", "redis": "up"}


def test_readyz_stays_ready_without_redis(harness: Harness) -> None:
    harness.cache.up = False

    reply = harness.client.get("/readyz")

    assert reply.status == 200
    assert reply.json()["redis"] == "down"
    assert reply.json()["down"] == ["redis"]
    assert "Redis (REDIS_URI) does not answer" in reply.json()["detail"]


def test_readyz_is_503_without_mongo(make_app: AppFactory) -> None:
    harness = make_app(store=UnreachableMetricStore())

    reply = harness.client.get("/readyz")

    assert reply.status == 503
    assert reply.header("retry-after") == "1"
    assert reply.json() == {
        "status": "unavailable",
        "mongo": "down",
        "redis": "up",
        "down": ["mongo"],
        "detail": "MongoDB (MONGO_URI) does not answer: requests that need it are answered 503.",
    }


# Routing


def test_unknown_path_is_404(harness: Harness) -> None:
    assert_problem(harness.client.get("/nope"), 404)
    assert_problem(harness.client.get("/metrics/"), 404)
    assert_problem(harness.client.get("/metrics/a/b"), 404)


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PATCH", "/metrics", "GET, HEAD, POST"),
        ("DELETE", "/metrics", "GET, HEAD, POST"),
        ("POST", "/metrics/0123456789abcdef01234567", "DELETE, GET, HEAD, PUT"),
        ("POST", "/healthz", "GET, HEAD"),
        ("OPTIONS", "/healthz", "GET, HEAD"),
    ],
)
def test_wrong_method_is_405_with_allow(harness: Harness, method: str, path: str, allow: str) -> None:
    reply = harness.client.request(method, path)

    assert_problem(reply, 405)
    assert reply.header("allow") == allow


@pytest.mark.parametrize(
    ("path", "query"),
    [("/healthz", ""), ("/metrics", "name=cpu"), ("/metrics/0123456789abcdef01234567", ""), ("/nope", "")],
)
def test_head_answers_like_get_without_the_body(harness: Harness, path: str, query: str) -> None:
    """The same status and headers, content-length of the GET body included, for answers and problems alike."""
    harness.client.get(path, query=query)  # a listing is cached by now: both answers say x-cache: hit
    get = harness.client.get(path, query=query)
    head = harness.client.request("HEAD", path, query=query)

    assert head.body == b""
    assert head.status == get.status
    assert [name for name, _ in head.headers] == [name for name, _ in get.headers]  # values: ratelimit counts down
    assert head.header("content-length") == str(len(get.body))
    assert (head.header("content-type"), head.header("x-cache")) == (get.header("content-type"), get.header("x-cache"))


def test_only_the_routes_that_say_so_escape_the_rate_limit(make_app: AppFactory) -> None:
    harness = make_app(tokens=InMemoryTokenSource(tokens=0))

    assert_problem(harness.client.get("/metrics"), 429)
    assert harness.client.request("HEAD", "/metrics").status == 429
    assert_problem(harness.client.get("/openapi.json"), 429)
    for path in ("/healthz", "/readyz", "/internal/metrics"):
        reply = harness.client.get(path)
        assert reply.status == 200, path
        assert reply.header("ratelimit-limit") is None, path


# Request bodies


def test_malformed_json_is_400(harness: Harness) -> None:
    problem = assert_problem(harness.client.post("/metrics", body=b'{"name": '), 400)

    assert problem["type"] == "/problems/malformed_json"


def test_empty_body_is_400(harness: Harness) -> None:
    assert_problem(harness.client.post("/metrics", body=b""), 400)


def test_declared_length_over_the_limit_is_413_without_reading_the_body(make_app: AppFactory) -> None:
    harness = make_app(max_body_bytes=1024)

    reply = harness.client.post("/metrics", body=b"{}", headers=[("content-length", "1025")])

    assert_problem(reply, 413)
    assert reply.received == 0


def test_streamed_body_over_the_limit_is_413_as_soon_as_it_passes(make_app: AppFactory) -> None:
    harness = make_app(max_body_bytes=1024)

    reply = harness.client.post("/metrics", chunks=[b" " * 600, b" " * 600, b" " * 600])

    assert_problem(reply, 413)
    assert reply.received == 2


def test_oversized_body_is_413_before_it_is_parsed(make_app: AppFactory) -> None:
    harness = make_app(max_body_bytes=1024)

    assert_problem(harness.client.post("/metrics", chunks=[b"not json" * 200]), 413)


def test_body_at_the_limit_is_accepted(make_app: AppFactory) -> None:
    harness = make_app(max_body_bytes=1024)
    body = b'{"name": "cpu", "value": 1}'

    reply = harness.client.post("/metrics", chunks=[body, b" " * (1024 - len(body))])

    assert reply.status == 201


def test_streamed_chunks_are_joined(harness: Harness) -> None:
    reply = harness.client.post("/metrics", chunks=[b'{"name": "cp', b'u", "val', b'ue": 2}'])

    assert reply.status == 201
    assert reply.json()["name"] == "cpu"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_wrong_content_type_is_415(harness: Harness, content_type: str | None) -> None:
    reply = harness.client.post("/metrics", json=METRIC, content_type=content_type)

    assert_problem(reply, 415)


def test_a_gzipped_body_is_stored_and_another_coding_is_415(harness: Harness) -> None:
    body = orjson.dumps(METRIC)
    gzipped = harness.client.post("/metrics", body=gzip.compress(body), headers=[("content-encoding", "gzip")])
    brotli = harness.client.post("/metrics", body=body, headers=[("content-encoding", "br")])

    assert gzipped.status == 201, gzipped.body
    assert gzipped.json()["name"] == METRIC["name"]
    assert assert_problem(brotli, 415)["type"] == "/problems/unsupported_content_encoding"
    assert brotli.header("accept-encoding") == "gzip"


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "Application/JSON", "application/x+json"])
def test_json_content_types_are_accepted(harness: Harness, content_type: str) -> None:
    assert harness.client.post("/metrics", json=METRIC, content_type=content_type).status == 201


# Create


def test_create_is_201_with_location(harness: Harness) -> None:
    reply = harness.client.post("/metrics", json=METRIC)

    assert reply.status == 201
    body = reply.json()
    assert POINT_ID.match(body["id"])
    assert reply.header("location") == f"/metrics/{body['id']}"
    assert body == {**METRIC, "id": body["id"], "timestamp": "2026-11-27T10:00:00.000Z"}
    assert harness.client.get(reply.header("location") or "").json() == body


def test_create_without_timestamp_uses_now(harness: Harness) -> None:
    body = create(harness, timestamp=None)

    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", body["timestamp"])


def test_invalid_metric_is_422_with_every_field_error(harness: Harness) -> None:
    reply = harness.client.post("/metrics", json={"name": "", "value": "high", "colour": "red"})

    problem = assert_problem(reply, 422)
    assert {e["field"] for e in problem["errors"]} == {"name", "value", "colour"}
    assert all("index" not in e for e in problem["errors"])
    assert harness.store.metrics == {}


@pytest.mark.parametrize("body", [b"42", b'"cpu"', b"null", b"true"])
def test_a_body_that_is_neither_object_nor_array_is_422(harness: Harness, body: bytes) -> None:
    problem = assert_problem(harness.client.post("/metrics", body=body), 422)

    assert problem["errors"][0]["field"] == "$"


def test_batch_is_201_with_ids(harness: Harness) -> None:
    reply = harness.client.post("/metrics", json=[METRIC, {**METRIC, "value": 2}, {"name": "mem", "value": 3}])

    assert reply.status == 201
    body = reply.json()
    assert body["count"] == 3
    assert sorted(body["ids"]) == sorted(harness.store.metrics)


def test_batch_is_all_or_nothing_with_the_index_of_each_bad_item(harness: Harness) -> None:
    batch = [METRIC, {**METRIC, "value": None}, METRIC, {**METRIC, "name": 7, "tags": "x"}]

    problem = assert_problem(harness.client.post("/metrics", json=batch), 422)

    assert sorted({e["index"] for e in problem["errors"]}) == [1, 3]
    assert {(e["index"], e["field"]) for e in problem["errors"]} == {(1, "value"), (3, "name"), (3, "tags")}
    assert "2 of 4" in problem["detail"]
    assert harness.store.metrics == {}


def test_batch_over_the_size_limit_is_422(make_app: AppFactory) -> None:
    harness = make_app(max_batch_size=2)

    assert_problem(harness.client.post("/metrics", json=[METRIC] * 3), 422)
    assert harness.client.post("/metrics", json=[METRIC] * 2).status == 201


def test_empty_batch_is_422(harness: Harness) -> None:
    assert_problem(harness.client.post("/metrics", json=[]), 422)


# Read and list


def test_get_by_id(harness: Harness) -> None:
    created = create(harness)

    reply = harness.client.get(f"/metrics/{created['id']}")

    assert reply.status == 200
    assert reply.json() == created


@pytest.mark.parametrize("id_", ["nope", "0123456789ABCDEF01234567", "0123456789abcdef0123456", "z" * 24, "%00"])
def test_malformed_ids_are_404_for_every_method(harness: Harness, id_: str) -> None:
    assert_problem(harness.client.get(f"/metrics/{id_}"), 404)
    assert_problem(harness.client.put(f"/metrics/{id_}", json=METRIC), 404)
    assert_problem(harness.client.delete(f"/metrics/{id_}"), 404)


def test_absent_id_is_404(harness: Harness) -> None:
    assert_problem(harness.client.get("/metrics/0123456789abcdef01234567"), 404)


def test_a_long_id_is_cut_where_the_answer_repeats_it(harness: Harness) -> None:
    for reply in (
        harness.client.get("/metrics/" + "x" * 5000),
        harness.client.put("/metrics/" + "x" * 5000, json=METRIC),
        harness.client.delete("/metrics/" + "x" * 5000),
    ):
        assert assert_problem(reply, 404)["detail"] == "no metric with id " + "x" * 63 + "…"


def test_list_filters_and_caches(harness: Harness) -> None:
    create(harness, name="cpu", tags=["host:a"])
    create(harness, name="cpu", tags=["host:b"])
    create(harness, name="mem", tags=["host:a"])

    first = harness.client.get("/metrics", query="name=cpu&tag=host:a")
    second = harness.client.get("/metrics", query="tag=host:a&name=cpu")

    assert first.status == 200
    assert first.header("content-type") == "application/json"
    assert [(m["name"], m["tags"]) for m in first.json()["items"]] == [("cpu", ["host:a"])]
    assert first.json()["next"] is None
    assert (first.header("x-cache"), second.header("x-cache")) == ("miss", "hit")
    assert second.body == first.body


def test_a_write_is_visible_to_the_next_list(harness: Harness) -> None:
    created = create(harness, name="cpu")
    assert harness.client.get("/metrics", query="name=cpu").header("x-cache") == "miss"
    assert harness.client.get("/metrics", query="name=cpu").header("x-cache") == "hit"

    harness.client.put(f"/metrics/{created['id']}", json={**METRIC, "name": "cpu", "value": 99})
    after_put = harness.client.get("/metrics", query="name=cpu")
    harness.client.delete(f"/metrics/{created['id']}")
    after_delete = harness.client.get("/metrics", query="name=cpu")

    assert after_put.header("x-cache") == "hit"  # the cached page was updated in place
    assert [m["value"] for m in after_put.json()["items"]] == [99]
    assert after_delete.json()["items"] == []


def test_list_pages_with_cursors(harness: Harness) -> None:
    for second in range(5):
        create(harness, timestamp=f"2026-11-27T10:00:0{second}.123Z")
    create(harness, timestamp="2026-11-27T10:00:04.123Z")  # a tie on the timestamp: the id breaks it

    seen: list[str] = []
    query = "limit=2"
    while True:
        page = harness.client.get("/metrics", query=query).json()
        seen += [m["timestamp"] for m in page["items"]]
        if page["next"] is None:
            break
        query = f"limit=2&cursor={page['next']}"

    assert len(seen) == 6
    assert seen == sorted(seen, reverse=True)


def test_list_with_a_bad_query_is_422(harness: Harness) -> None:
    problem = assert_problem(harness.client.get("/metrics", query="limit=0&sort=sideways&colour=red"), 422)

    assert {e["field"] for e in problem["errors"]} == {"limit", "sort", "colour"}


# Replace and delete


def test_replace_is_a_full_replace(harness: Harness) -> None:
    created = create(harness)

    reply = harness.client.put(f"/metrics/{created['id']}", json={"name": "mem", "value": 7, "id": created["id"]})

    assert reply.status == 200
    body = reply.json()
    assert (body["id"], body["name"], body["tags"], body["value"]) == (created["id"], "mem", [], 7)
    assert harness.client.get(f"/metrics/{created['id']}").json() == body


def test_replace_with_a_contradicting_id_is_422(harness: Harness) -> None:
    created = create(harness)

    problem = assert_problem(harness.client.put(f"/metrics/{created['id']}", json={**METRIC, "id": "0" * 24}), 422)

    assert [e["field"] for e in problem["errors"]] == ["id"]


def test_replace_validates_like_create(harness: Harness) -> None:
    created = create(harness)

    assert_problem(harness.client.put(f"/metrics/{created['id']}", json={"name": "cpu"}), 422)
    assert_problem(harness.client.put(f"/metrics/{created['id']}", json=METRIC, content_type="text/plain"), 415)


def test_replace_of_an_absent_metric_is_404(harness: Harness) -> None:
    assert_problem(harness.client.put("/metrics/0123456789abcdef01234567", json=METRIC), 404)


def test_delete_is_204_then_404(harness: Harness) -> None:
    created = create(harness)

    reply = harness.client.delete(f"/metrics/{created['id']}")

    assert reply.status == 204
    assert reply.body == b""
    assert reply.header("content-type") is None
    assert harness.store.metrics == {}
    assert_problem(harness.client.delete(f"/metrics/{created['id']}"), 404)


# Failures


def test_unexpected_exception_is_a_bare_500_with_a_request_id(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    harness.store.failure = RuntimeError("secret connection string mongodb://admin:hunter2@db")

    with caplog.at_level(logging.ERROR, logger="telemetry_server"):
        reply = harness.client.get("/metrics")

    problem = assert_problem(reply, 500)
    assert problem["request_id"] in problem["detail"]
    assert b"hunter2" not in reply.body
    assert b"Traceback" not in reply.body
    assert b"RuntimeError" not in reply.body
    assert set(problem) == {"type", "title", "status", "detail", "request_id"}
    logged = [r for r in caplog.records if r.exc_info]
    assert len(logged) == 1
    assert problem["request_id"] in logged[0].getMessage()


def test_request_ids_differ(harness: Harness) -> None:
    ids = {harness.client.get("/nope").json()["request_id"] for _ in range(3)}

    assert len(ids) == 3


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("GET", "/metrics", {}),
        ("POST", "/metrics", {"json": METRIC}),
        ("GET", "/metrics/0123456789abcdef01234567", {}),
        ("PUT", "/metrics/0123456789abcdef01234567", {"json": METRIC}),
        ("DELETE", "/metrics/0123456789abcdef01234567", {}),
    ],
)
def test_unreachable_store_is_503_with_retry_after(
    make_app: AppFactory, method: str, path: str, kwargs: dict[str, Any]
) -> None:
    harness = make_app()
    harness.store.failure = StorageUnavailable("MongoDB is unreachable (test)")

    reply = harness.client.request(method, path, **kwargs)

    assert_problem(reply, 503)
    assert reply.header("retry-after") == "1"


def test_reads_survive_a_cache_that_is_down(make_app: AppFactory) -> None:
    harness = make_app(cache=InMemoryQueryCache(), store=InMemoryMetricStore())
    create(harness)
    harness.cache.up = False

    reply = harness.client.get("/metrics")

    assert reply.status == 200
    assert reply.header("x-cache") == "miss"
    assert len(reply.json()["items"]) == 1


def test_list_filters_on_values(harness: Harness) -> None:
    for value in (1, 5, 9):
        create(harness, value=value)

    reply = harness.client.get("/metrics", query="value_gt=1&value_lte=9")

    assert sorted(m["value"] for m in reply.json()["items"]) == [5, 9]
