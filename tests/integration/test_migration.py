"""`telemetry-server migrate` against a real engine: nothing lost or doubled, old ids resolve, interruptions heal."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient, MongoClient
from pymongo.database import Database

from telemetry_server.models.timestamps import from_millis, to_millis
from telemetry_server.storage.bucket_columns import decode_columns
from telemetry_server.storage.migration import MIGRATION_ID, MetricsMigration, MigrationRefused, Outcome

from .conftest import ROOT, ServerProcess

Doc = dict[str, Any]
# (old id, name, tags, value, ms): a point as the old layout held it, and as the new one must give it back.
Point = tuple[str, str, tuple[str, ...], float, int]


@pytest.fixture
def app_env() -> str:
    return f"migrate{uuid.uuid4().hex[:10]}"


@pytest.fixture
def database(mongo_uri: str, app_env: str) -> Iterator[Database[Doc]]:
    client: MongoClient[Doc] = MongoClient(mongo_uri, tz_aware=True)
    yield client[f"telemetry_server_{app_env}"]
    client.drop_database(f"telemetry_server_{app_env}")
    client.close()


def seed_old_layout(database: Database[Doc], count: int, seed: int = 1) -> list[Point]:
    """Documents as MongoMetricStore wrote them: same-millisecond points, tags in two orders, spans over an hour."""
    rng = random.Random(seed)
    start = datetime(2026, 11, 20, tzinfo=UTC)
    docs: list[Doc] = []
    for i in range(count):
        name = f"svc{rng.randrange(6)}.cpu"
        tags = rng.choice([[], ["host:a"], ["host:a", "region:eu"], ["region:eu", "host:a"], ["host:b"]])
        # Ten points share each millisecond somewhere, and the whole run spans several hours.
        at = start + timedelta(milliseconds=(i // 10) * rng.choice((1, 7, 2500)))
        docs.append({"_id": ObjectId(), "name": name, "tags": tags, "value": rng.uniform(-1e6, 1e6), "timestamp": at})
    docs.append({"_id": ObjectId(), "name": "no.tags.field", "value": 3, "timestamp": start})
    database["metrics"].insert_many(docs)
    return sorted(old_point(doc) for doc in docs)


def old_point(doc: Doc) -> Point:
    return (
        str(doc["_id"]),
        doc["name"],
        tuple(doc.get("tags") or ()),
        float(doc["value"]),
        to_millis(doc["timestamp"]),
    )


def new_points(database: Database[Doc]) -> list[Point]:
    """Every point the buckets hold, with the id a listing would give it."""
    series = {doc["_id"]: (doc["name"], tuple(doc["tags"])) for doc in database["series"].find()}
    points: list[Point] = []
    for bucket in database["buckets"].find():
        name, tags = series[bucket["series"]]
        columns = decode_columns(bucket)
        assert bucket["count"] == len(columns)
        for index, slot in enumerate(columns.slots()):
            points.append((columns.point_id(bucket["series"], index), name, tags, slot.value, slot.millis))
    return sorted(points)


def resolve_legacy(database: Database[Doc], old_id: str) -> Point | None:
    """What GET /metrics/{old id} finds: the legacy row, then the slot in the bucket holding it."""
    row = database["legacy"].find_one({"_id": ObjectId(old_id)})
    if row is None:
        return None
    at = from_millis(row["millis"])
    series = database["series"].find_one({"_id": row["series"]})
    assert series is not None
    for bucket in database["buckets"].find({"series": row["series"], "start": {"$lte": at}, "end": {"$gte": at}}):
        columns = decode_columns(bucket)
        index = columns.index_of(row["millis"], row["seq"])
        if index is not None:
            point_id = columns.point_id(row["series"], index)
            return point_id, series["name"], tuple(series["tags"]), columns.values[index], row["millis"]
    return None


def migrate(mongo_uri: str, database: Database[Doc], chunk_size: int = 700) -> Outcome:
    async def run() -> Outcome:
        client: AsyncMongoClient[Doc] = AsyncMongoClient(mongo_uri, tz_aware=True)
        try:
            return await MetricsMigration(client[database.name], chunk_size).run()
        finally:
            await client.close()

    return asyncio.run(run())


def drop_old(mongo_uri: str, database: Database[Doc]) -> int:
    async def run() -> int:
        client: AsyncMongoClient[Doc] = AsyncMongoClient(mongo_uri, tz_aware=True)
        try:
            return await MetricsMigration(client[database.name]).drop_old()
        finally:
            await client.close()

    return asyncio.run(run())


def test_migration_keeps_every_point_once_under_its_old_id(mongo_uri: str, database: Database[Doc]) -> None:
    before = seed_old_layout(database, 5_000)

    outcome = migrate(mongo_uri, database)

    assert outcome.migrated == outcome.migrated_now == len(before)
    assert new_points(database) == before  # every point, once, with its old id, value and time
    assert database["legacy"].count_documents({}) == len(before)
    for point in before:
        assert resolve_legacy(database, point[0]) == point
    assert database["metrics"].count_documents({}) == len(before)  # the old layout is left alone


def test_a_second_run_does_nothing(mongo_uri: str, database: Database[Doc]) -> None:
    before = seed_old_layout(database, 1_500)
    migrate(mongo_uri, database)
    buckets = sorted(doc["_id"] for doc in database["buckets"].find({}, {"_id": 1}))

    again = migrate(mongo_uri, database)

    assert again.already_done
    assert (again.migrated_now, again.migrated) == (0, len(before))
    assert sorted(doc["_id"] for doc in database["buckets"].find({}, {"_id": 1})) == buckets
    assert new_points(database) == before


def test_a_chunk_redone_after_its_writes_adds_nothing(mongo_uri: str, database: Database[Doc]) -> None:
    """The worst moment to stop: a chunk's buckets and legacy rows written, its completion not yet recorded."""
    before = seed_old_layout(database, 2_999)  # and one without tags: three chunks of 1,000
    migrate(mongo_uri, database, chunk_size=1_000)
    ids = sorted(ObjectId(point[0]) for point in before)
    database["migration"].update_one(
        {"_id": MIGRATION_ID},
        {
            "$set": {"last": ids[1_999], "migrated": 2_000, "pending": {"upto": ids[-1], "count": 1_000}},
            "$unset": {"finished_at": ""},
        },
    )

    outcome = migrate(mongo_uri, database, chunk_size=50)  # a different chunk size does not move the pinned chunk

    assert (outcome.migrated_now, outcome.migrated) == (1_000, len(before))
    assert new_points(database) == before


def test_killed_mid_chunk_and_resumed_gives_the_same_result(
    mongo_uri: str, database: Database[Doc], app_env: str
) -> None:
    before = seed_old_layout(database, 30_000, seed=2)
    env = {**os.environ, "MONGO_URI": mongo_uri, "APP_ENV": app_env, "ENVIRONMENT": "test", "LOG_LEVEL": "warning"}
    command = [sys.executable, "-m", "telemetry_server", "migrate", "--batch", "100"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert killed_mid_chunk(database, process)
    finally:
        process.kill()
        process.wait()
    state = database["migration"].find_one({"_id": MIGRATION_ID})
    assert state is not None
    assert 0 < state["migrated"] < len(before)

    resumed = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=True)

    assert new_points(database) == before
    assert database["legacy"].count_documents({}) == len(before)
    assert "points/s" in resumed.stderr  # progress, on stderr
    assert "migration done" in resumed.stdout
    finished = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True)
    assert "already done" in finished.stdout


def killed_mid_chunk(database: Database[Doc], process: subprocess.Popen[bytes]) -> bool:
    """SIGKILL the migration while a chunk is named but not recorded as done, after at least one chunk."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        state = database["migration"].find_one({"_id": MIGRATION_ID}) or {}
        if state.get("pending") is not None and state.get("migrated", 0) > 0:
            process.send_signal(signal.SIGKILL)
            return True
        time.sleep(0.002)
    return False


def test_drop_old_only_after_the_counts_match(mongo_uri: str, database: Database[Doc]) -> None:
    before = seed_old_layout(database, 800)
    with pytest.raises(MigrationRefused, match="not finished"):
        drop_old(mongo_uri, database)
    migrate(mongo_uri, database)
    late = {"_id": ObjectId(), "name": "late", "tags": [], "value": 1.0, "timestamp": datetime.now(UTC)}
    database["metrics"].insert_one(late)  # an old server still writing

    with pytest.raises(MigrationRefused, match="not dropped"):
        drop_old(mongo_uri, database)

    assert migrate(mongo_uri, database).migrated_now == 1  # a rerun takes what came after
    assert drop_old(mongo_uri, database) == len(before) + 1
    assert "metrics" not in database.list_collection_names()
    assert resolve_legacy(database, str(late["_id"])) is not None


def test_progress_is_reported_every_few_seconds(mongo_uri: str, database: Database[Doc]) -> None:
    seed_old_layout(database, 2_000)
    seen: list[str] = []

    async def run() -> None:
        client: AsyncMongoClient[Doc] = AsyncMongoClient(mongo_uri, tz_aware=True)
        try:
            migration = MetricsMigration(client[database.name], 200, lambda p: seen.append(p.describe()), 0.0)
            await migration.run()
        finally:
            await client.close()

    asyncio.run(run())

    assert seen[0].startswith("migrated 0 / 2,001 points")
    assert len(seen) >= 10
    assert seen[-1].startswith("migrated 2,001 / 2,001 points (100.0%)")


def test_the_server_answers_by_old_ids_after_the_migration(
    mongo_uri: str, database: Database[Doc], app_env: str, server_factory: Callable[..., ServerProcess]
) -> None:
    before = seed_old_layout(database, 600, seed=3)
    migrate(mongo_uri, database)
    server = server_factory(workers=1, APP_ENV=app_env)
    sample = random.Random(3).sample(before, 40)

    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        for old_id, name, tags, value, millis in sample:
            answer = http.get(f"/metrics/{old_id}")
            assert answer.status_code == 200
            body = answer.json()
            assert (body["id"], body["name"], tuple(body["tags"]), body["value"]) == (old_id, name, tags, value)
            assert datetime.fromisoformat(body["timestamp"]) == from_millis(millis)
        listed = http.get("/metrics", params={"name": "svc0.cpu", "limit": 1000}).json()["items"]
        assert sorted(item["id"] for item in listed) == sorted(p[0] for p in before if p[1] == "svc0.cpu")

        old_id = sample[0][0]
        replaced = http.put(f"/metrics/{old_id}", json={"name": "moved.by.put", "value": 1.5})
        assert replaced.status_code == 200
        assert http.get(f"/metrics/{old_id}").json()["name"] == "moved.by.put"
        assert http.delete(f"/metrics/{sample[1][0]}").status_code == 204
        assert http.get(f"/metrics/{sample[1][0]}").status_code == 404
