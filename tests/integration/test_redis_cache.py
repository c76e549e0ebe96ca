"""RedisCache against a real Redis that hangs (SIGSTOP) and comes back with its data (SIGCONT): what writes
could not invalidate is held, sent in chunks, and past CACHE_BACKLOG_MAX replaced by dropping the whole cache."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager

from redis.asyncio import Redis

from telemetry_server import engines
from telemetry_server.config import Settings
from telemetry_server.storage.redis_cache import RedisCache
from telemetry_server.storage.redis_client import create_redis_client

LISTING = "listing?name=cpu"
DEPENDENCY = "n:cpu"


@contextmanager
def hung(redis: engines.Engine) -> Iterator[None]:
    """Redis stops answering (commands time out) and later answers again with everything it held."""
    os.kill(redis.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(redis.pid, signal.SIGCONT)


@asynccontextmanager
async def redis_cache(redis: engines.Engine, backlog_max: int) -> AsyncIterator[RedisCache]:
    settings = Settings(redis_uri=redis.uri, redis_timeout_ms=100)
    client = create_redis_client(settings)
    cache = RedisCache(client, create_redis_client(settings, subscriber=True), "ts:cachetest", 60, backlog_max)
    try:
        yield cache
    finally:
        await client.flushall()
        await cache.aclose()


async def outlast_backoff() -> None:
    """After a failure the cache leaves Redis alone for a second."""
    await asyncio.sleep(1.1)


async def read_keys(redis: engines.Engine, keys: list[str]) -> list[bytes | None]:
    client = Redis.from_url(redis.uri)
    try:
        values: list[bytes | None] = await client.mget(keys)
    finally:
        await client.aclose()
    return values


async def cache_a_listing(cache: RedisCache) -> None:
    lookup = await cache.lookup(DEPENDENCY, LISTING)
    await cache.store(LISTING, lookup, b"old body")
    assert (await cache.lookup(DEPENDENCY, LISTING)).value == b"old body"


async def hold_while_hung(redis: engines.Engine, cache: RedisCache, dependencies: list[str]) -> None:
    with hung(redis):
        await cache.invalidate(dependencies)  # the write is acknowledged: its keys are held
        await outlast_backoff()
        assert (await cache.lookup(DEPENDENCY, LISTING)).generation == b"", "Redis was read while it hung"
    await outlast_backoff()


def test_held_invalidations_are_sent_in_chunks_when_redis_answers(
    redis_factory: Callable[[], engines.Engine],
) -> None:
    redis = redis_factory()

    async def scenario() -> None:
        async with redis_cache(redis, backlog_max=10_000) as cache:
            await cache_a_listing(cache)
            # Counters start at a random value (so that an evicted one never repeats): compare with before.
            (epoch_before,) = await read_keys(redis, ["{ts:cachetest}:epoch"])
            written = [DEPENDENCY, *(f"n:cpu|t:host:{i}" for i in range(2_500))]
            await hold_while_hung(redis, cache, written)

            # Redis kept the old entry; the first read after the outage sends the held keys and so misses.
            after = await cache.lookup(DEPENDENCY, LISTING)
            assert after.generation != b""
            assert after.value is None
            counters = await read_keys(redis, [f"{{ts:cachetest}}:gen:{d}" for d in written])
            assert None not in counters, "a held key was not sent"
            assert await read_keys(redis, ["{ts:cachetest}:epoch"]) == [epoch_before], "the cache was dropped"

    asyncio.run(scenario())


def test_past_the_bound_the_whole_cache_is_dropped_instead(redis_factory: Callable[[], engines.Engine]) -> None:
    redis = redis_factory()

    async def scenario() -> None:
        async with redis_cache(redis, backlog_max=100) as cache:
            await cache_a_listing(cache)
            other = "listing?name=mem"
            await cache.store(other, await cache.lookup("n:mem", other), b"other body")
            watched = ["{ts:cachetest}:epoch", f"{{ts:cachetest}}:gen:{DEPENDENCY}"]
            epoch_before, generation_before = await read_keys(redis, watched)
            assert epoch_before is not None
            assert generation_before is not None
            written = [DEPENDENCY, *(f"n:cpu|t:host:{i}" for i in range(500))]
            await hold_while_hung(redis, cache, written)

            assert (await cache.lookup(DEPENDENCY, LISTING)).value is None
            assert (await cache.lookup("n:mem", other)).value is None, "an untouched entry survived the drop"
            epoch, generation = await read_keys(redis, watched)
            assert epoch == str(int(epoch_before) + 1).encode()
            assert generation == generation_before, "held keys were sent one by one"
            # The cache works again at once, on the new epoch.
            await cache_a_listing(cache)

    asyncio.run(scenario())


def test_messages_are_numbered_in_order_and_the_note_goes_with_the_last_keys(
    redis_factory: Callable[[], engines.Engine],
) -> None:
    redis = redis_factory()

    async def scenario() -> None:
        async with redis_cache(redis, backlog_max=10_000) as cache:
            received: list[tuple[int, list[str], bytes]] = []
            subscribed, all_received = asyncio.Event(), asyncio.Event()

            def on_message(number: int, keys: list[str], note: bytes) -> None:
                received.append((number, keys, note))
                if len(received) == 4:
                    all_received.set()

            def on_state(live: bool) -> None:
                if live:
                    subscribed.set()

            listening = asyncio.create_task(cache.listen(on_message, on_state))
            await subscribed.wait()
            assert await cache.invalidate([DEPENDENCY], b'{"a": "note"}')
            assert await cache.invalidate([f"n:cpu|t:host:{i}" for i in range(2_500)], b"second")
            await asyncio.wait_for(all_received.wait(), 30)
            listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listening

            numbers = [number for number, _, _ in received]
            assert numbers == list(range(numbers[0], numbers[0] + 4))
            assert received[0][1:] == ([DEPENDENCY], b'{"a": "note"}')
            assert [note for _, _, note in received[1:]] == [b"", b"", b"second"]
            assert sum(len(keys) for _, keys, _ in received[1:]) == 2_500

    asyncio.run(scenario())
