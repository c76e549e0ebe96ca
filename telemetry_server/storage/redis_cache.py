"""RedisCache: the shared L2 of response bodies, invalidated by a generation counter per dependency key (and
dropped whole by an epoch counter), and the pub/sub channel that tells every worker's L1 which keys were
written, in order, with what the write changed."""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from telemetry_server.errors import StorageUnavailable
from telemetry_server.ports import UNCACHEABLE, Lookup
from telemetry_server.storage.redis_client import (
    RedisClient,
    follow_channel,
    publish_command,
    shared_slot,
    unavailable_when_failing,
)

log = logging.getLogger("telemetry_server.cache")

# After a failure the cache is skipped for this long, so that reads do not each wait out a timeout.
_BACKOFF_SECONDS = 1.0

# KEYS: the generation counters a write bumps (or the epoch), then the channel's message counter; ARGV: the
# channel, the message for every worker's L1, a random start for a counter that does not exist (never
# set, or evicted): one created again at 1 would count up through values that entries stored under the
# evicted one still carry. Each message goes out numbered, so that an L1 can tell which messages a write
# had seen when it began (services/two_level_cache.py); the number is small (one a write), so Lua's
# doubles hold it exactly, and a counter that is lost restarts at 1, below what any L1 has seen. ARGV[4]:
# PUBLISH, or SPUBLISH on a cluster (storage/redis_client.py).
# PERF: one command instead of a pipeline of one INCR per key: a group commit of 13 metrics touches ~50
# keys, and redis-py spends its CPU per command encoded.
_INVALIDATE = """
for i = 1, #KEYS - 1 do
  if redis.call('INCR', KEYS[i]) == 1 then redis.call('SET', KEYS[i], ARGV[3]) end
end
local number = redis.call('INCR', KEYS[#KEYS])
redis.call(ARGV[4], ARGV[1], string.format('%d', number) .. ' ' .. ARGV[2])
return number
"""
# Generation counters bumped per call of _INVALIDATE. A backlog of 120k keys sent as one call outlasted
# REDIS_TIMEOUT_MS, failed, and was sent again, whole, every second for minutes.
# PERF: one call of 1,000 INCRs took 3 ms here (10,000: 70 ms; 120,000: 1.7 s), well inside the timeout.
_CHUNK_KEYS = 1000
# Published in place of a list of keys when the epoch is bumped: every L1 entry may be stale.
_DROP_ALL = b"drop-all"

# What a listener gets of each message: its number, the dependency keys written, and the note the writer
# sent with them (empty when none).
OnMessage = Callable[[int, list[str], bytes], None]


class RedisCache:
    """Entries are stored with the epoch and the generation of the key they depend on; a write bumps the
    generations of every key it touches (services/cache_dependency.py). A read is one MGET (epoch, generation and
    entry together), and a write's invalidation one Lua call per 1,000 keys, which also publishes the keys for
    the L1 caches of every worker: `<number> <keys as JSON>`, then a line with the writer's note, if any.

    Redis may evict any key (docker-compose.yml runs it allkeys-lru), a counter too; so a counter (a generation
    or the epoch) that is not there is never read as 0 nor restarted at 1, but created at a random 62-bit
    value, from which it will not count up to a value an entry stored under an evicted counter carries (odds
    of about 2**-62 per bump): eviction costs misses, never a stale answer.

    While Redis is down, the keys of acknowledged writes are held, at most `backlog_max` of them, and sent
    first when it answers; until they are, this worker reads nothing from Redis. Past the bound they are
    forgotten and the epoch is bumped instead, which drops every entry at once: an outage costs bounded
    memory and a recovery of bounded length, and once what was held is sent (or the epoch bumped), no worker
    serves an entry that those writes staled.

    On a cluster every key and the channel share one hash slot (`shared_slot`), so that a read stays one MGET
    and an invalidation one script: the cache lives on one shard, and the cluster gives it a replica to fail
    over to. Replication is asynchronous, so a primary that dies may take with it bumps it had acknowledged;
    with `drop_after_outage` (a cluster, a Sentinel-managed primary), a worker that saw Redis fail bumps the
    epoch before it reads again, so a promoted replica serves no entry from before the failover.
    """

    def __init__(
        self,
        client: RedisClient,
        subscriber: RedisClient,
        namespace: str,
        ttl_seconds: int,
        backlog_max: int = 10_000,
        *,
        drop_after_outage: bool = False,
    ) -> None:
        self._client = client
        self._subscriber = subscriber
        self._ttl = ttl_seconds
        self._down_until = 0.0
        self._up = True  # as last seen: the outage and the recovery are each logged once
        self._backlog_max = backlog_max
        self._held: set[str] = set()
        self._writes_past_backlog = 0  # writes whose keys were forgotten: the epoch must be bumped after them
        self._sending_held = False
        self._drop_after_outage = drop_after_outage
        self._must_drop = False  # a failure was seen: the epoch is bumped before anything else is read
        self._prefix = shared_slot(namespace)
        self.channel = f"{self._prefix}:invalidate"
        self._epoch_key = f"{self._prefix}:epoch"
        self._number_key = f"{self._prefix}:messages"
        self._publish = publish_command(client)
        self._invalidate = client.register_script(_INVALIDATE)

    @property
    def _available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _generation_key(self, dependency: str) -> str:
        return f"{self._prefix}:gen:{dependency}"

    def _entry_key(self, query_key: str) -> str:
        digest = hashlib.blake2b(query_key.encode(), digest_size=16).hexdigest()
        return f"{self._prefix}:q:{digest}"

    async def lookup(self, dependency: str, query_key: str) -> Lookup:
        if self._ttl == 0 or not await self._ready():
            return UNCACHEABLE
        generation_key = self._generation_key(dependency)
        try:
            async with unavailable_when_failing("read"):
                values: list[Any] = await self._client.mget(self._epoch_key, generation_key, self._entry_key(query_key))
                epoch, counter, entry = values
                if epoch is None:
                    epoch, entry = await self._new_counter(self._epoch_key), None
                if counter is None:
                    counter, entry = await self._new_counter(generation_key), None
        except StorageUnavailable as exc:
            self._failed(exc)
            return UNCACHEABLE
        self._answered()
        generation = epoch + b"." + counter
        if entry is not None:
            stored_generation, _, value = entry.partition(b"\n")
            if stored_generation == generation:
                return Lookup(value, generation, dependency)
        return Lookup(None, generation, dependency)

    async def store(self, query_key: str, lookup: Lookup, value: bytes) -> None:
        if not lookup.generation or not self._available:
            return
        try:
            async with unavailable_when_failing("write"):
                await self._client.set(self._entry_key(query_key), lookup.generation + b"\n" + value, ex=self._ttl)
        except StorageUnavailable as exc:
            self._failed(exc)
            return
        self._answered()

    async def _new_counter(self, key: str) -> bytes:
        """Create a counter that is not there; whoever creates it first wins, and everyone reads that."""
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.set(key, _random_start(), nx=True)
            pipe.get(key)
            _, value = await pipe.execute()
        return value or b""

    async def invalidate(self, dependencies: Sequence[str], note: bytes = b"") -> bool:
        """Bump the counters of these keys (before the write is acknowledged) and publish them, the `note` with
        the last of them; held if Redis is down (without the note). Whether they were sent now."""
        await self._ready()  # what is held goes first, unless another request is sending it already
        if self._available:
            try:
                await self._send(dependencies, note)
            except StorageUnavailable as exc:
                self._failed(exc)
            else:
                self._answered()
                return True
        self._hold(dependencies)
        return False

    async def listen(self, on_message: OnMessage, on_state: Callable[[bool], None]) -> None:
        """Deliver every worker's messages, until cancelled; `on_state(False)` whenever messages may have been
        missed (the L1 must not be trusted then), `on_state(True)` once subscribed again."""

        async def subscribed() -> None:
            on_state(True)
            await self._ready()  # an idle worker sends what it holds as soon as Redis is back

        def message(data: bytes) -> None:
            number, _, rest = data.partition(b" ")
            keys, _, note = rest.partition(b"\n")
            dependencies = None
            try:
                sequence = int(number)
                if keys != _DROP_ALL:
                    dependencies = orjson.loads(keys)
            except ValueError:  # not a message of ours (another version's?): what it invalidated is unknown
                pass
            if dependencies is None:
                on_state(False)  # every L1 entry may be stale, as after a gap in the subscription
                on_state(True)
            else:
                on_message(sequence, dependencies, note)

        def lost(failure: StorageUnavailable | None) -> None:
            on_state(False)
            if failure is not None:
                self._failed(failure)

        await follow_channel(self._subscriber, self.channel, message, subscribed, lost)

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
        """Whether entries may be read: Redis answers and nothing is held. What is held is sent first, so no
        entry is served that a write this worker acknowledged has staled."""
        if not self._available:
            return False
        if not self._held and not self._writes_past_backlog and not self._must_drop:
            return True
        if self._sending_held:
            return False  # another request is sending it: this one reads from MongoDB meanwhile
        self._sending_held = True
        try:
            await self._send_held()
        except StorageUnavailable as exc:
            self._failed(exc)
            return False
        finally:
            self._sending_held = False
        self._answered()
        return True

    def _hold(self, dependencies: Sequence[str]) -> None:
        if self._writes_past_backlog:
            self._writes_past_backlog += 1
            return
        self._held.update(dependencies)
        if len(self._held) > self._backlog_max:
            log.warning(
                "more than %d cache invalidations (CACHE_BACKLOG_MAX) are waiting for Redis: forgotten; "
                "the whole cache is dropped when Redis answers",
                self._backlog_max,
            )
            self._held.clear()
            self._writes_past_backlog = 1

    async def _send_held(self) -> None:
        if self._must_drop:
            async with unavailable_when_failing("dropping the cache after an outage"):
                await self._invalidate(keys=[self._epoch_key, self._number_key], args=self._arguments(_DROP_ALL))
            self._must_drop = False
            log.warning("dropped the whole Redis cache: a failover may have lost invalidations it acknowledged")
        if self._writes_past_backlog:
            covered = self._writes_past_backlog
            async with unavailable_when_failing("dropping the cache"):
                await self._invalidate(keys=[self._epoch_key, self._number_key], args=self._arguments(_DROP_ALL))
            self._writes_past_backlog -= covered  # writes held meanwhile need another bump
            log.warning("dropped the whole Redis cache: more invalidations were waiting than CACHE_BACKLOG_MAX")
        while self._held:
            chunk = [self._held.pop() for _ in range(min(_CHUNK_KEYS, len(self._held)))]
            try:
                await self._send(chunk)
            except StorageUnavailable:
                self._hold(chunk)
                raise

    async def _send(self, dependencies: Sequence[str], note: bytes = b"") -> None:
        for start in range(0, len(dependencies), _CHUNK_KEYS):
            chunk = sorted(dependencies[start : start + _CHUNK_KEYS])
            message = orjson.dumps(chunk)
            if note and start + _CHUNK_KEYS >= len(dependencies):
                message += b"\n" + note
            async with unavailable_when_failing("invalidate"):
                await self._invalidate(
                    keys=[*(self._generation_key(d) for d in chunk), self._number_key], args=self._arguments(message)
                )

    def _arguments(self, message: bytes) -> list[bytes | str]:
        return [self.channel, message, _random_start(), self._publish]

    def _failed(self, exc: StorageUnavailable) -> None:
        # Every worker retries each second while Redis is down: only the change of state is worth a line.
        if self._up:
            log.warning("%s; serving from MongoDB, uncached, until it answers", exc.detail)
            self._up = False
        if self._drop_after_outage:
            self._must_drop = True
        self._down_until = time.monotonic() + _BACKOFF_SECONDS

    def _answered(self) -> None:
        if not self._up:
            log.warning("Redis answers again; the cache is back")
            self._up = True


def _random_start() -> bytes:
    """Where a new counter starts: far below INCR's limit of 2**63 - 1, and nowhere an old one has been."""
    return str(secrets.randbits(62)).encode()
