"""The cache, its L1 channel, the rate limit, the stats board and key revocations on a real Valkey cluster of 3
primaries and 3 replicas; then a server on it whose cache's primary is killed (SIGKILL) under load."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from telemetry_server import redis_engines
from telemetry_server.config import Settings
from telemetry_server.storage.redis_cache import RedisCache
from telemetry_server.storage.redis_client import RedisClient, create_redis_client, shared_slot
from telemetry_server.storage.redis_rate_limit import RedisTokenSource
from telemetry_server.storage.redis_revocations import RedisKeyRevocations
from telemetry_server.storage.redis_stats import RedisStatsBoard
from tests.integration.conftest import ServerProcess, count_stored, wait_until
from tests.integration.test_faults import WRITE_STATUSES, Load

RECOVERY_SECONDS = 30  # generous: recovery is asserted by what the server answers, never by how fast


@pytest.fixture(scope="module")
def cluster(work_dir: Path) -> Iterator[redis_engines.ValkeyCluster]:
    with redis_engines.running(redis_engines.start_cluster(work_dir / "cluster")) as started:
        yield started


def clients(cluster: redis_engines.ValkeyCluster, count: int) -> list[tuple[RedisClient, RedisClient]]:
    """`count` workers' clients (commands, subscriber), each told only the first node."""
    first = cluster.uri.split(",")[0]
    settings = Settings(redis_uri=first, redis_timeout_ms=500)
    return [(create_redis_client(settings), create_redis_client(settings, subscriber=True)) for _ in range(count)]


async def eventually(check: Callable[[], bool], seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def test_the_cache_and_its_channel_work_across_the_cluster(cluster: redis_engines.ValkeyCluster) -> None:
    async def scenario() -> None:
        (client, subscriber), (other, other_subscriber) = clients(cluster, 2)
        writer = RedisCache(client, subscriber, "ts:clustertest", 60, drop_after_outage=True)
        reader = RedisCache(other, other_subscriber, "ts:clustertest", 60, drop_after_outage=True)
        heard: list[tuple[int, list[str], bytes]] = []
        states: list[bool] = []
        listener = asyncio.create_task(reader.listen(lambda *message: heard.append(message), states.append))
        try:
            assert await eventually(lambda: states == [True])
            lookup = await reader.lookup("n:cpu", "listing?name=cpu")
            assert lookup.generation
            assert lookup.value is None
            await reader.store("listing?name=cpu", lookup, b"old body")
            assert (await writer.lookup("n:cpu", "listing?name=cpu")).value == b"old body"

            # Many keys in one invalidation: one script, one slot, one message to every worker.
            written = ["n:cpu", *(f"t:host:h{i}" for i in range(2500))]
            assert await writer.invalidate(written, note=b"the note")
            assert (await reader.lookup("n:cpu", "listing?name=cpu")).value is None
            assert await eventually(lambda: sum(len(keys) for _, keys, _ in heard) == len(written))
            numbers = [number for number, _, _ in heard]
            assert numbers == sorted(numbers)
            assert len(set(numbers)) == len(numbers)
            assert heard[-1][2] == b"the note"
            assert await writer.ping()
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
            await writer.aclose()
            await reader.aclose()

    asyncio.run(scenario())


def test_limits_stats_and_revocations_are_shared_across_the_cluster(cluster: redis_engines.ValkeyCluster) -> None:
    async def scenario() -> None:
        workers = clients(cluster, 3)
        try:
            # Buckets of many clients spread over the shards; each is still one atomic script.
            sources = [RedisTokenSource(client, "ts:clustertest", per_second=1, burst=10) for client, _ in workers]
            for name in (f"client-{i}" for i in range(20)):
                granted = [await source.take(name, 4) for source in sources]
                assert [g for g, _ in granted] == [4, 4, 2]

            boards = [RedisStatsBoard(client, "ts:clustertest") for client, _ in workers]
            for i, board in enumerate(boards):
                await board.post(f"worker-{i}", {"requests": i})
            assert await boards[0].collect() == {f"worker-{i}": {"requests": i} for i in range(3)}

            revocations = [RedisKeyRevocations(c, s, "ts:clustertest") for c, s in workers]
            heard: list[list[str]] = [[], []]
            followers = [asyncio.create_task(r.listen(heard[i].append)) for i, r in enumerate(revocations[1:])]
            try:
                # Sharded pub/sub: until both follow the channel, a message may reach one of them.
                for _ in range(100):
                    await revocations[0].publish("0123456789abcdef")
                    if all(heard):
                        break
                    await asyncio.sleep(0.05)
                assert all("0123456789abcdef" in ids for ids in heard), heard
            finally:
                for task in followers:
                    task.cancel()
                await asyncio.gather(*followers, return_exceptions=True)
        finally:
            for client, subscriber in workers:
                await client.aclose()
                await subscriber.aclose()

    asyncio.run(scenario())


def test_the_l1_channel_follows_its_slot_to_the_promoted_replica(cluster: redis_engines.ValkeyCluster) -> None:
    """The subscriber's node dies: the listener is told messages may have been missed, subscribes again on
    the replica promoted in its place, and hears what is published there."""

    async def scenario() -> None:
        (client, subscriber), (other, other_subscriber) = clients(cluster, 2)
        writer = RedisCache(client, subscriber, "ts:failovertest", 60, drop_after_outage=True)
        reader = RedisCache(other, other_subscriber, "ts:failovertest", 60, drop_after_outage=True)
        heard: list[list[str]] = []
        states: list[bool] = []
        listener = asyncio.create_task(reader.listen(lambda _, keys, __: heard.append(keys), states.append))
        victim = cluster.primary_of(reader.channel)
        try:
            assert await eventually(lambda: states == [True])
            victim.kill()
            await asyncio.to_thread(cluster.wait_for_new_primary, reader.channel, victim)
            assert await eventually(lambda: states[-2:] == [False, True], 30), states
            # Until the writer's client has found the new primary its invalidations are held, then sent.
            for _ in range(100):
                await writer.invalidate(["n:after"])
                if ["n:after"] in heard:
                    break
                await asyncio.sleep(0.1)
            assert ["n:after"] in heard, (states, heard)
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
            await writer.aclose()
            await reader.aclose()
            victim.start()  # back as a replica

    asyncio.run(scenario())


def kill_under_load(server: ServerProcess, mongo_uri: str, metric_name: str, kill: Callable[[], None]) -> None:
    """`kill` takes the Redis primary down (SIGKILL) and waits for a replica to be promoted, under writes and
    reads: writes go on (201, or 503 at most), every acknowledged one is stored, and the cache and the limiter
    come back by themselves: listings fresh and cached again, Redis reported up."""
    listing = {"name": metric_name, "limit": 1000}
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        assert http.post("/metrics", json={"name": metric_name, "value": -1}).status_code == 201
        http.get("/metrics", params=listing)
        assert http.get("/metrics", params=listing).headers["x-cache"] == "hit"

        with Load(server.base_url, metric_name, threads=4, writes_per_second=100) as load:
            assert wait_until(lambda: len(load.acknowledged_so_far()) >= 50, 20), load.statuses
            kill()
            killed_at = len(load.acknowledged_so_far())
            assert wait_until(lambda: len(load.acknowledged_so_far()) >= killed_at + 100, 30), load.statuses
        acknowledged = [*load.acknowledged]

        def fresh_and_cached() -> bool:
            answers = [http.get("/metrics", params=listing) for _ in range(4)]
            counts = {len(answer.json()["items"]) for answer in answers}
            return counts == {1 + len(acknowledged)} and answers[-1].headers["x-cache"] == "hit"

        assert wait_until(fresh_and_cached, RECOVERY_SECONDS), "the cache did not recover: stale or never cached"
        assert http.get("/readyz").json()["redis"] == "up"
    server.stop()  # before its Redis goes

    print(f"kill -9 of the Redis primary: statuses {dict(load.statuses)}, {len(acknowledged)} acknowledged")
    assert count_stored(mongo_uri, "telemetry_server_test", acknowledged) == len(acknowledged)
    assert {status for (method, status) in load.statuses if method == "POST"} <= WRITE_STATUSES, load.statuses
    assert {status for (method, status) in load.statuses if method == "GET"} <= {200, 503}, load.statuses
    log = server.log_path.read_text()
    assert "dropped the whole Redis cache: a failover" in log, "no worker saw the failover: the test proves nothing"
    if "rate limits are per worker" in log:
        assert "rate limits are shared again" in log


def test_a_killed_primary_loses_no_acknowledged_write_and_the_cache_recovers(
    cluster: redis_engines.ValkeyCluster,
    server_factory: Callable[..., ServerProcess],
    mongo_uri: str,
    metric_name: str,
) -> None:
    """The primary killed is the one holding the cache's slot; it comes back as a replica afterwards."""
    server = server_factory(REDIS_URI=cluster.uri.split(",")[0])
    key = shared_slot("ts:test") + ":epoch"
    victim = cluster.primary_of(key)

    def kill() -> None:
        victim.kill()
        cluster.wait_for_new_primary(key, victim)

    try:
        kill_under_load(server, mongo_uri, metric_name, kill)
    finally:
        victim.start()
