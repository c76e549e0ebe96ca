"""MongoDB settings for replica sets against a real MongoDB-wire engine: a retry after an unknown outcome
stores nothing twice, a primary killed (SIGKILL) and restarted under load loses no acknowledged write and
duplicates none, and listings follow MONGO_READ_PREFERENCE.

The local engines are single nodes (secantus-mdb advertises a one-member replica set), so a failover to
another member cannot be tested here; a restart of the only one is the nearest thing (docs/scaling.md)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
from bson import Int64
from bson.binary import Binary
from pymongo import AsyncMongoClient, MongoClient

from telemetry_server import engines
from telemetry_server.models.point_id import decode_point_id
from telemetry_server.storage.bucket_columns import decode_columns
from telemetry_server.storage.mongo import insert_idempotent
from tests.integration.conftest import ServerProcess, count_stored, wait_until
from tests.integration.test_faults import WRITE_STATUSES, Load, ready, start_private_mongo

KILLS = 2
__all__ = ["start_private_mongo"]  # a fixture of test_faults.py, used here too


def test_a_retried_insert_stores_nothing_twice(mongo_uri: str) -> None:
    """The first attempt stored all, or some, of the documents but its answer was lost: the retry (the same
    documents, the same ids) stores only what is missing, and succeeds."""

    async def scenario() -> list[Any]:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri)
        collection = client["telemetry_server_test"][f"retries_{uuid.uuid4().hex[:8]}"]
        try:
            docs: list[dict[str, Any]] = [{"n": n} for n in range(10)]
            await insert_idempotent(collection, docs)
            await insert_idempotent(collection, docs)  # stored whole the first time
            await collection.delete_many({"n": {"$gte": 5}})
            await insert_idempotent(collection, docs)  # stored in part the first time
            return sorted([doc["n"] async for doc in collection.find()])
        finally:
            await collection.drop()
            await client.close()

    assert asyncio.run(scenario()) == list(range(10))


def test_the_engine_runs_a_retryable_write_once(mongo_uri: str) -> None:
    """What pymongo's retryable writes count on: the same statement sent again in the same session, with the
    same transaction number, is answered without being run again."""
    with MongoClient(mongo_uri) as client:
        database = client["telemetry_server_test"]
        name = f"retryable_{uuid.uuid4().hex[:8]}"
        command = {
            "insert": name,
            "documents": [{"n": 1}, {"n": 2}],
            "lsid": {"id": Binary(uuid.uuid4().bytes, 4)},
            "txnNumber": Int64(1),
        }
        try:
            assert database.command(dict(command))["n"] == 2
            database.command(dict(command))
            assert database[name].count_documents({}) == 2
        finally:
            database.drop_collection(name)


def points_of(mongo_uri: str, series_ids: set[int]) -> Counter[tuple[int, int, int]]:
    """Every point the buckets of these series hold, counted: a point stored twice counts 2."""
    points: Counter[tuple[int, int, int]] = Counter()
    with MongoClient(mongo_uri, tz_aware=True) as client:
        for doc in client["telemetry_server_test"]["buckets"].find({"series": {"$in": list(series_ids)}}):
            columns = decode_columns(doc)
            points.update(
                (doc["series"], millis, seq) for millis, seq in zip(columns.millis, columns.seqs, strict=True)
            )
    return points


def test_a_primary_killed_and_restarted_under_load_loses_and_duplicates_nothing(
    server_factory: Callable[..., ServerProcess],
    start_private_mongo: Callable[[], engines.Engine],
    metric_name: str,
) -> None:
    mongo = start_private_mongo()
    server = server_factory(MONGO_URI=mongo.uri, MONGO_TIMEOUT_MS="500", WRITE_BATCH_DELAY_MS="2")
    try:
        with Load(server.base_url, metric_name, reads=False, writes_per_second=150) as load:
            for kill in range(KILLS):
                assert wait_until(lambda n=(kill + 1) * 50: len(load.acknowledged_so_far()) >= n, 20), load.statuses
                os.kill(mongo.pid, signal.SIGKILL)
                engines.stop_pid(mongo.pid)
                time.sleep(0.3)  # writes in flight meet a dead engine: unknown outcomes, retried or refused
                mongo = start_private_mongo()
                assert wait_until(ready(server, "mongo"), 30), "the server did not see MongoDB come back"
            time.sleep(1)
        after = httpx.post(f"{server.base_url}/metrics", json={"name": metric_name, "value": -1})
        assert after.status_code == 201, after.text
        acknowledged = [*load.acknowledged, after.json()["id"]]
        stored = count_stored(mongo.uri, "telemetry_server_test", acknowledged)
        slots = [decode_point_id(id_) for id_ in acknowledged]
        points = points_of(mongo.uri, {slot.series for slot in slots if slot is not None})
    finally:
        engines.stop_pid(mongo.pid)

    twice = {point: count for point, count in points.items() if count > 1}
    print(f"kill -9 of MongoDB x{KILLS}: {dict(load.statuses)}; {len(acknowledged)} acknowledged, {len(points)} held")
    assert stored == len(acknowledged), "an acknowledged write was lost"
    assert not twice, f"points stored twice: {list(twice)[:5]}"
    assert {status for (_, status) in load.statuses} <= WRITE_STATUSES, load.statuses


def test_listings_read_where_mongo_read_preference_says(
    server_factory: Callable[..., ServerProcess], metric_name: str
) -> None:
    """secondaryPreferred on a single node reads from the primary; the listing is the same."""
    server = server_factory(MONGO_READ_PREFERENCE="secondaryPreferred", CACHE_TTL_SECONDS="0")
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        written = http.post("/metrics", json={"name": metric_name, "value": 1})
        assert written.status_code == 201, written.text
        items = http.get("/metrics", params={"name": metric_name}).json()["items"]
    assert [item["id"] for item in items] == [written.json()["id"]]
