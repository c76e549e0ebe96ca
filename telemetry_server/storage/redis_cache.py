"""RedisCache: the shared L2 of response bodies, invalidated by a generation counter per dependency key, and
the pub/sub channel that tells every worker's L1 which keys were written."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from redis.asyncio import Redis

from telemetry_server.errors import StorageUnavailable
from telemetry_server.ports import UNCACHEABLE, Lookup
from telemetry_server.storage.redis_client import unavailable_when_failing

log = logging.getLogger("telemetry_server.cache")

# After a failure the cache is skipped for this long, so that reads do not each wait out a timeout.
_BACKOFF_SECONDS = 1.0

# KEYS: the generation counters a write bumps; ARGV: the channel and the message for every worker's L1.
# PERF: one command instead of a pipeline of one INCR per key: a group commit of 13 metrics touches ~50
# keys, and redis-py spends its CPU per command encoded.
_INVALIDATE = """
for _, key in ipairs(KEYS) do redis.call('INCR', key) end
redis.call('PUBLISH', ARGV[1], ARGV[2])
return #KEYS
"""


class RedisCache:
    """Entries are stored with the generation of the key they depend on; a write bumps the generations of
    every key it touches (models/cache_dependency.py). A read is one MGET, and a write's invalidation one
    pipelined round trip, which also publishes the keys for the L1 caches of every worker.
    """

    def __init__(self, client: Redis, subscriber: Redis, namespace: str, ttl_seconds: int) -> None:
        self._client = client
        self._subscriber = subscriber
        self._namespace = namespace
        self._ttl = ttl_seconds
        self._down_until = 0.0
        self._up = True  # as last seen: the outage and the recovery are each logged once
        self._pending: set[str] = set()
        self.channel = f"{namespace}:invalidate"
        self._invalidate = client.register_script(_INVALIDATE)

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _generation_key(self, dependency: str) -> str:
        return f"{self._namespace}:gen:{dependency}"

    def _entry_key(self, query_key: str) -> str:
        digest = hashlib.blake2b(query_key.encode(), digest_size=16).hexdigest()
        return f"{self._namespace}:q:{digest}"

    async def lookup(self, dependency: str, query_key: str) -> Lookup:
        if self._ttl == 0 or not await self._ready():
            return UNCACHEABLE
        try:
            async with unavailable_when_failing("read"):
                values: list[Any] = await self._client.mget(
                    self._generation_key(dependency), self._entry_key(query_key)
                )
        except StorageUnavailable as exc:
            self._failed(exc)
            return UNCACHEABLE
        self._answered()
        generation, entry = values[0] or b"0", values[1]
        if entry is not None:
            stored_generation, _, value = entry.partition(b"\n")
            if stored_generation == generation:
                return Lookup(value, generation, dependency)
        return Lookup(None, generation, dependency)

    async def store(self, query_key: str, lookup: Lookup, value: bytes) -> None:
        if not lookup.generation or not self.available:
            return
        try:
            async with unavailable_when_failing("write"):
                await self._client.set(self._entry_key(query_key), lookup.generation + b"\n" + value, ex=self._ttl)
        except StorageUnavailable as exc:
            self._failed(exc)
            return
        self._answered()

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
                async with unavailable_when_failing("subscribe"):
                    await pubsub.subscribe(self.channel)
                    on_state(True)
                    async for message in pubsub.listen():
                        on_keys(orjson.loads(message["data"]))
            except StorageUnavailable as exc:
                on_state(False)
                self._failed(exc)
                await asyncio.sleep(_BACKOFF_SECONDS)
            finally:
                on_state(False)
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def ping(self) -> bool:
        try:
            async with unavailable_when_failing("ping"):
                await self._client.ping()
        except StorageUnavailable:
            return False
        return True

    async def aclose(self) -> None:
        await self._subscriber.aclose()
        await self._client.aclose()

    async def _ready(self) -> bool:
        """Flush pending invalidations first: no entry is served that a write this worker made has staled."""
        if not self.available:
            return False
        if not self._pending:
            return True
        dependencies, self._pending = self._pending, set()
        keys = [self._generation_key(d) for d in dependencies]
        try:
            async with unavailable_when_failing("invalidate"):
                await self._invalidate(keys=keys, args=[self.channel, orjson.dumps(sorted(dependencies))])
        except StorageUnavailable as exc:
            self._pending |= dependencies
            self._failed(exc)
            return False
        self._answered()
        return True

    def _failed(self, exc: StorageUnavailable) -> None:
        # Every worker retries each second while Redis is down: only the change of state is worth a line.
        if self._up:
            log.warning("%s; serving from MongoDB, uncached, until it answers", exc.detail)
            self._up = False
        self._down_until = time.monotonic() + _BACKOFF_SECONDS

    def _answered(self) -> None:
        if not self._up:
            log.warning("Redis answers again; the cache is back")
            self._up = True
