"""Redis at its memory limit, evicting keys (allkeys-lru, as docker-compose.yml runs it): eviction may cost
cache misses, never a stale answer, and does not take the bucket of a client being rate-limited."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from telemetry_server import engines
from telemetry_server.storage.redis_cache import RedisCache
from telemetry_server.storage.redis_client import shared_slot
from telemetry_server.storage.redis_rate_limit import RedisTokenSource
from tests.integration.conftest import ServerProcess

MAXMEMORY_BYTES = 4 * 1024 * 1024
JUNK_VALUE = b"j" * 1024


@pytest.fixture
def small_redis(work_dir: Path) -> Iterator[Callable[[], str]]:
    """Start Redis servers of MAXMEMORY_BYTES with allkeys-lru; stopped after the test."""
    started: list[engines.Engine] = []

    def start() -> str:
        port = engines.free_port()
        folder = work_dir / f"small-redis-{port}"
        folder.mkdir()
        command = engines.redis_command(port, folder)
        command += ["--maxmemory", str(MAXMEMORY_BYTES), "--maxmemory-policy", "allkeys-lru"]
        started.append(engines.start("redis", command, port, folder / "log"))
        return started[-1].uri

    yield start
    for engine in started:
        engines.stop_pid(engine.pid)


async def fill(client: Redis, prefix: str, nbytes: int) -> None:
    """Write `nbytes` of junk keys (1 KiB values), pushing Redis past its limit so that it evicts."""
    for start in range(0, nbytes // len(JUNK_VALUE), 500):
        async with client.pipeline(transaction=False) as pipe:
            for i in range(start, start + 500):
                pipe.set(f"junk:{prefix}:{i}", JUNK_VALUE)
            await pipe.execute()


async def evicted_keys(client: Redis) -> int:
    stats = await client.info("stats")
    return int(stats["evicted_keys"])


async def drop_generations(client: Redis, namespace: str) -> int:
    """Remove every generation counter and the epoch, as eviction may: the cache must not be fooled by one
    created again."""
    prefix = shared_slot(namespace)  # the cache's keys share one cluster slot
    keys = [key async for key in client.scan_iter(match=f"{prefix}:gen:*", count=1000)]
    keys += [key async for key in client.scan_iter(match=f"{prefix}:epoch", count=1000)]
    if keys:
        await client.delete(*keys)
    return len(keys)


def test_cache_at_its_memory_limit_never_serves_a_stale_entry(small_redis: Callable[[], str]) -> None:
    """The cache adapter over a Redis that keeps evicting: a model of the database (a version per dependency)
    is read through the cache, written, and Redis is filled past its limit in between; every hit must carry
    the current version. Rounds that drop the counters alone reproduce the eviction that used to restart a
    counter at a value an old entry carried."""
    uri = small_redis()

    async def scenario() -> tuple[int, int]:
        client, subscriber = Redis.from_url(uri), Redis.from_url(uri)
        cache = RedisCache(client, subscriber, "evict", ttl_seconds=60)
        dependencies = [f"name:m{i}" for i in range(40)]
        truth = dict.fromkeys(dependencies, 0)
        rng = random.Random(7)
        hits = 0
        try:
            for round_ in range(12):
                for dependency in dependencies:
                    query = f"list {dependency}"
                    found = await cache.lookup(dependency, query)
                    assert found.generation, "Redis answered"
                    if found.value is not None:
                        hits += 1
                        assert int(found.value) == truth[dependency], f"stale entry of {dependency}"
                    else:
                        await cache.store(query, found, str(truth[dependency]).encode())
                written = rng.sample(dependencies, 10)
                for dependency in written:
                    truth[dependency] += 1
                if round_ % 3 == 2:
                    await drop_generations(client, "evict")
                await cache.invalidate(written)
                await fill(client, f"r{round_}", MAXMEMORY_BYTES // 2)
            return hits, await evicted_keys(client)
        finally:
            await cache.aclose()

    hits, evicted = asyncio.run(scenario())
    assert evicted > 0, "Redis never reached its limit: the test proves nothing"
    assert hits > 0, "nothing was ever served from the cache: the test proves nothing"


def test_listing_after_its_counters_are_evicted_shows_every_write(
    server_factory: Callable[..., ServerProcess], small_redis: Callable[[], str], metric_name: str
) -> None:
    """Through the server: a cached listing, its counters evicted, as many writes again as before (so a
    counter restarted at 1 would be back at the entry's value); then Redis filled past its limit: the
    listings show every write."""
    uri = small_redis()
    server = server_factory(REDIS_URI=uri, L1_CACHE_TTL_MS="0")
    params = {"name": metric_name, "limit": "1000"}

    def in_redis(action: Callable[[Redis], Awaitable[int]]) -> int:
        async def run() -> int:
            client = Redis.from_url(uri)
            try:
                return await action(client)
            finally:
                await client.aclose()

        return asyncio.run(run())

    async def fill_past_the_limit(client: Redis) -> int:
        await fill(client, metric_name, 2 * MAXMEMORY_BYTES)
        return await evicted_keys(client)

    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        for value in range(3):
            assert http.post("/metrics", json={"name": metric_name, "value": value}).status_code == 201
        assert len(http.get("/metrics", params=params).json()["items"]) == 3
        assert http.get("/metrics", params=params).headers["x-cache"] == "hit"

        assert in_redis(lambda client: drop_generations(client, "ts:test")) > 0
        for value in range(3, 6):
            assert http.post("/metrics", json={"name": metric_name, "value": value}).status_code == 201
        assert len(http.get("/metrics", params=params).json()["items"]) == 6

        assert in_redis(fill_past_the_limit) > 0
        assert http.post("/metrics", json={"name": metric_name, "value": 6}).status_code == 201
        for _ in range(2):  # a miss, then (if Redis kept it) a hit of the entry that miss stored
            assert len(http.get("/metrics", params=params).json()["items"]) == 7


def test_lru_keeps_the_bucket_of_a_client_in_use(small_redis: Callable[[], str]) -> None:
    """A drained bucket must not come back full because Redis is short of memory: allkeys-lru evicts the
    least recently used keys, and a client being limited touches its bucket at every lease."""
    uri = small_redis()

    async def scenario() -> tuple[int, int]:
        client = Redis.from_url(uri)
        tokens = RedisTokenSource(client, "evict", per_second=1, burst=50)
        try:
            await fill(client, "old", 2 * MAXMEMORY_BYTES)
            await asyncio.sleep(1.5)  # Redis's LRU clock ticks once a second: the junk is now older
            granted, _ = await tokens.take("client", 50)
            assert granted == 50
            await fill(client, "new", MAXMEMORY_BYTES // 4)
            after, _ = await tokens.take("client", 50)
            return after, await evicted_keys(client)
        finally:
            await client.aclose()

    after, evicted = asyncio.run(scenario())
    assert evicted > 0
    assert after < 25, "the drained bucket came back full: it was evicted"
