"""Heavy reads cannot starve writes: aggregations and filtered listings are bounded in number and in time, the
engine is told the time limit, and writes are stored while reads the engine is slow to answer are refused.

The engine is SecantusDB's Python server with its test commands on, whatever MONGO_ENGINE_CMD says: its
`failCommand` and `maxTimeAlwaysTimeOut` failpoints make reads slow, or time-limited, on demand, so a few
requests over a few metrics stand for a flood of heavy questions over millions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from telemetry_server import engines
from tests.integration.conftest import ServerProcess, count_stored

TIMEOUT_MS = 500
# The client's patience: far beyond every limit the server is given, so a hung request fails the test as a
# timeout rather than passing as a slow 200.
CLIENT_TIMEOUT_S = 20


@pytest.fixture(scope="module")
def failpoint_engine(work_dir: Path) -> Iterator[tuple[str, MongoClient[dict[str, Any]]]]:
    port = engines.free_port()
    data = work_dir / f"failpoint-mongo-{port}"
    data.mkdir()
    command = [*engines.mongo_command(port, data, {}), "--enable-test-commands"]
    engine = engines.start("mongo", command, port, data / "log")
    client: MongoClient[dict[str, Any]] = MongoClient(engine.uri, tz_aware=True)
    yield engine.uri, client
    client.close()
    engines.stop_pid(engine.pid)


@pytest.fixture(scope="module")
def server(
    server_factory: Callable[..., ServerProcess], failpoint_engine: tuple[str, MongoClient[dict[str, Any]]]
) -> ServerProcess:
    """One worker whose pool (4) holds one aggregation, one filtered listing and one group commit at a time."""
    return server_factory(
        workers=1,
        MONGO_URI=failpoint_engine[0],
        APP_ENV="heavy_reads",
        MONGO_POOL_SIZE="4",
        QUERY_CONCURRENCY="1",
        LISTING_CONCURRENCY="1",
        WRITE_BATCH_CONCURRENCY="1",
        QUERY_TIMEOUT_MS=str(TIMEOUT_MS),
        MONGO_TIMEOUT_MS="1000",
    )


@contextlib.contextmanager
def failpoint(client: MongoClient[dict[str, Any]], name: str, **data: object) -> Iterator[None]:
    command: dict[str, object] = {"configureFailPoint": name, "mode": "alwaysOn"}
    if data:
        command["data"] = data
    client.admin.command(command)
    try:
        yield
    finally:
        client.admin.command({"configureFailPoint": name, "mode": "off"})


def heavy_reads(name: str) -> list[str]:
    """Distinct questions (no cache or single-flight joins them), more than the bulkheads hold."""
    aggregates = [f"/metrics/aggregate?fn=p95&name={name}&group_by=host&range={days}d" for days in range(1, 7)]
    listings = [f"/metrics?name={name}&value_gt=0.{n}" for n in range(6)]
    return aggregates + listings


def assert_timed_out(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    assert response.json()["type"] == "/problems/query_timed_out"


def write(base_url: str, name: str, count: int) -> list[httpx.Response]:
    with httpx.Client(base_url=base_url, timeout=CLIENT_TIMEOUT_S) as client:
        return [client.post("/metrics", json={"name": name, "tags": ["host:w"], "value": i}) for i in range(count)]


def test_writes_are_stored_while_reads_the_engine_is_slow_to_answer_are_refused(
    server: ServerProcess, failpoint_engine: tuple[str, MongoClient[dict[str, Any]]], metric_name: str
) -> None:
    engine = failpoint_engine[1]
    seeded = httpx.post(f"{server.base_url}/metrics", json=[{"name": metric_name, "value": 1}] * 10)
    assert seeded.status_code == 201
    paths = heavy_reads(metric_name)

    # Every find and aggregate waits 3 s in the engine: far past the 0.5 s limit.
    with (
        failpoint(engine, "failCommand", failCommands=["find", "aggregate"], blockConnection=True, blockTimeMS=3000),
        httpx.Client(base_url=server.base_url, timeout=CLIENT_TIMEOUT_S) as client,
        ThreadPoolExecutor(len(paths) + 1) as pool,
    ):
        reads = [pool.submit(client.get, path) for path in paths]
        writes = pool.submit(write, server.base_url, metric_name, 5)
        read_answers = [read.result() for read in reads]
        write_answers = writes.result()

    for answer in read_answers:
        assert_timed_out(answer)
    assert [answer.status_code for answer in write_answers] == [201] * 5, [a.text for a in write_answers]
    ids = [answer.json()["id"] for answer in write_answers]
    assert count_stored(failpoint_engine[0], "telemetry_server_heavy_reads", ids) == len(ids)


def test_the_engine_is_told_the_time_limit_of_heavy_reads_only(
    server: ServerProcess, failpoint_engine: tuple[str, MongoClient[dict[str, Any]]], metric_name: str
) -> None:
    # The engine refuses every operation that carries a maxTimeMS, and runs those that do not.
    with (
        failpoint(failpoint_engine[1], "maxTimeAlwaysTimeOut"),
        httpx.Client(base_url=server.base_url, timeout=CLIENT_TIMEOUT_S) as client,
    ):
        written = client.post("/metrics", json={"name": metric_name, "value": 0.9})
        plain = client.get("/metrics", params={"name": metric_name})
        heavy = [client.get(path) for path in heavy_reads(metric_name)[::3]]

    assert written.status_code == 201
    assert plain.status_code == 200
    assert [item["value"] for item in plain.json()["items"]] == [0.9]
    for answer in heavy:
        assert_timed_out(answer)
