"""RedisCache: the shared L2 of response bodies, invalidated by a generation counter per dependency key, and
the pub/sub channel that tells every worker's L1 which keys were written."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import ConnectionError, RedisError, TimeoutError

from telemetry_server.config import Settings
from telemetry_server.ports import UNCACHEABLE, Lookup

log = logging.getLogger("telemetry_server.cache")

# After a failure the cache is skipped for this long, so that reads do not each wait out a timeout.
_BACKOFF_SECONDS = 1.0

# KEYS: the generation counters a write bumps; ARGV: the channel, the message for every worker's L1, and a
# random start for a counter that does not exist (never set, or evicted): one created again at 1 would count
# up through values that entries stored under the evicted one still carry.
# PERF: one command instead of a pipeline of one INCR per key: a group commit of 13 metrics touches ~50
# keys, and redis-py spends its CPU per command encoded.
_INVALIDATE = """
for _, key in ipairs(KEYS) do
  if redis.call('INCR', key) == 1 then redis.call('SET', key, ARGV[3]) end
end
redis.call('PUBLISH', ARGV[1], ARGV[2])
return #KEYS
"""


def create_redis_client(settings: Settings, *, subscriber: bool = False) -> Redis:
    """One client (and so one pool) per worker, created in the lifespan after the fork; a subscriber's
    connection waits for messages as long as it takes, so it has no read timeout."""
    assert settings.redis_uri is not None
    timeout = settings.redis_timeout_ms / 1000
    # A blocking pool: past REDIS_POOL_SIZE busy connections a command waits (up to the timeout) for one,
    # instead of failing with "Too many connections" and turning the cache off under load.
    pool = BlockingConnectionPool.from_url(
        settings.redis_uri,
        max_connections=2 if subscriber else settings.redis_pool_size,
        timeout=timeout,
        socket_timeout=None if subscriber else timeout,
        socket_connect_timeout=timeout,
        retry_on_timeout=False,
        health_check_interval=0,
    )
    return Redis.from_pool(pool)


class RedisCache:
    """Entries are stored with the generation of the key they depend on; a write bumps the generations of
    every key it touches (models/cache_dependency.py). A read is one MGET, and a write's invalidation one
    Lua script (`_INVALIDATE`, one round trip) that bumps the counters and publishes the keys for the L1
    caches of every worker.

    Redis may evict any key (docker-compose.yml runs it allkeys-lru), a counter too; so a counter that is not
    there is never read as 0 nor restarted at 1, but created at a random 62-bit value, from which it will not
    count up to a value an entry stored under an evicted counter carries (odds of about 2**-62 per bump):
    eviction costs misses, never a stale answer.
    """

    def __init__(self, client: Redis, subscriber: Redis, namespace: str, ttl_seconds: int) -> None:
        self._client = client
        self._subscriber = subscriber
        self._namespace = namespace
        self._ttl = ttl_seconds
        self._down_until = 0.0
        self._pending: set[str] = set()
        self.channel = f"{namespace}:invalidate"
        self._invalidate = client.register_script(_INVALIDATE)

    @property
    def _available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _generation_key(self, dependency: str) -> str:
        return f"{self._namespace}:gen:{dependency}"

    def _entry_key(self, query_key: str) -> str:
        digest = hashlib.blake2b(query_key.encode(), digest_size=16).hexdigest()
        return f"{self._namespace}:q:{digest}"

    async def lookup(self, dependency: str, query_key: str) -> Lookup:
        if self._ttl == 0 or not await self._ready():
            return UNCACHEABLE
        generation_key = self._generation_key(dependency)
        try:
            values: list[Any] = await self._client.mget(generation_key, self._entry_key(query_key))
            generation, entry = values[0], values[1]
            if generation is None:
                generation, entry = await self._new_generation(generation_key), None
        except RedisError as exc:
            self._failed("read", exc)
            return UNCACHEABLE
        if entry is not None:
            stored_generation, _, value = entry.partition(b"\n")
            if stored_generation == generation:
                return Lookup(value, generation, dependency)
        return Lookup(None, generation, dependency)

    async def store(self, query_key: str, lookup: Lookup, value: bytes) -> None:
        if not lookup.generation or not self._available:
            return
        try:
            await self._client.set(self._entry_key(query_key), lookup.generation + b"\n" + value, ex=self._ttl)
        except RedisError as exc:
            self._failed("write", exc)

    async def _new_generation(self, key: str) -> bytes:
        """Create the counter of a key that has none; whoever creates it first wins, and everyone reads that."""
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.set(key, _random_start(), nx=True)
            pipe.get(key)
            _, generation = await pipe.execute()
        return generation or b""

    async def invalidate(self, dependencies: Sequence[str]) -> None:
        """Bump the counters of these keys; remembered and retried if Redis is down."""
        self._pending.update(dependencies)
        await self._ready()

    async def listen(self, on_keys: Callable[[list[str]], None], on_state: Callable[[bool], None]) -> None:
        """Deliver the dependency keys every worker writes, until cancelled; `on_state(False)` whenever messages may
        have been missed (the L1 must not be trusted then), `on_state(True)` once subscribed again."""
        while True:
            pubsub = self._subscriber.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                on_state(True)
                async for message in pubsub.listen():
                    on_keys(orjson.loads(message["data"]))
            except (RedisError, OSError) as exc:
                on_state(False)
                self._failed("subscribe", exc if isinstance(exc, RedisError) else ConnectionError(str(exc)))
                await asyncio.sleep(_BACKOFF_SECONDS)
            finally:
                on_state(False)
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def ping(self) -> bool:
        try:
            await self._client.ping()
        except RedisError:
            return False
        return True

    async def aclose(self) -> None:
        await self._subscriber.aclose()
        await self._client.aclose()

    async def _ready(self) -> bool:
        """Flush pending invalidations first: no entry is served that a write this worker made has staled."""
        if not self._available:
            return False
        if not self._pending:
            return True
        dependencies, self._pending = self._pending, set()
        keys = [self._generation_key(d) for d in dependencies]
        try:
            await self._invalidate(keys=keys, args=[self.channel, orjson.dumps(sorted(dependencies)), _random_start()])
        except RedisError as exc:
            self._pending |= dependencies
            self._failed("invalidate", exc)
            return False
        return True

    def _failed(self, action: str, exc: RedisError) -> None:
        if self._available:
            kind = "unreachable" if isinstance(exc, ConnectionError | TimeoutError) else "failing"
            log.warning("Redis %s on %s (%s); serving from MongoDB for now", kind, action, exc)
        self._down_until = time.monotonic() + _BACKOFF_SECONDS


def _random_start() -> bytes:
    """Where a new counter starts: far below INCR's limit of 2**63 - 1, and nowhere an old one has been."""
    return str(secrets.randbits(62)).encode()
