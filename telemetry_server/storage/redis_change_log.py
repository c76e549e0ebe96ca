"""RedisChangeLog: the acknowledged writes of every worker of every instance, in one Redis stream, and the
short-lived stream tokens handed to browsers."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from typing import Any

from redis.exceptions import ResponseError

from telemetry_server.ports import LogWindow
from telemetry_server.storage.redis_client import RedisClient, unavailable_when_failing

_FIELD = b"c"
_START = "0-0"


class RedisChangeLog:
    """One stream entry per appended group of changes (`XADD ... MAXLEN ~ max_len`): a group commit or a chunk
    of a batch is one entry, so a write costs one command, not one per point. Readers block on the worker's
    subscriber client, which has no read timeout. Shares the worker's clients with the cache, which closes them.
    """

    def __init__(self, client: RedisClient, subscriber: RedisClient, namespace: str, max_len: int) -> None:
        self._client = client
        self._subscriber = subscriber
        self._key = f"{namespace}:changes"
        self._tokens = f"{namespace}:stream-token:"
        self._max_len = max_len

    async def append(self, entries: Sequence[bytes]) -> None:
        """One round trip for all of them, in order."""
        async with unavailable_when_failing("appending to the change log"):
            if len(entries) == 1:
                await self._client.xadd(self._key, {_FIELD: entries[0]}, maxlen=self._max_len, approximate=True)
                return
            pipe = self._client.pipeline(transaction=False)
            for entry in entries:
                pipe.xadd(self._key, {_FIELD: entry}, maxlen=self._max_len, approximate=True)
            await pipe.execute()

    async def read_after(self, after: str, count: int, block_seconds: float) -> list[tuple[str, bytes]]:
        """Entries after `after`, waiting up to `block_seconds` for the first; [] when none came."""
        async with unavailable_when_failing("reading the change log"):
            answer: Any = await self._subscriber.xread({self._key: after}, count=count, block=int(block_seconds * 1000))
        return _entries(answer[0][1]) if answer else []

    async def replay(self, start: str, until: str, count: int) -> list[tuple[str, bytes]]:
        """Up to `count` entries from `start` to `until` (both included), oldest first."""
        async with unavailable_when_failing("replaying the change log"):
            answer: Any = await self._client.xrange(self._key, min=start, max=until, count=count)
        return _entries(answer)

    async def window(self) -> LogWindow:
        async with unavailable_when_failing("reading the change log's window"):
            try:
                info = await self._client.xinfo_stream(self._key)
            except ResponseError as exc:  # no such key: nothing was ever appended (or Redis lost it)
                if "no such key" not in str(exc).lower():
                    raise
                return LogWindow(None, _START, trimmed=False)
        first = info.get("first-entry")
        added = info.get("entries-added")  # Redis 7 and Valkey; an older server does not say, so may have trimmed
        return LogWindow(
            _text(first[0]) if first else None,
            _text(info.get("last-generated-id", _START)),
            trimmed=added is None or int(added) > int(info.get("length", 0)),
        )

    async def issue_token(self, key_id: str, seconds: int) -> str:
        token = secrets.token_urlsafe(24)
        async with unavailable_when_failing("storing a stream token"):
            await self._client.set(self._tokens + _digest(token), key_id, ex=seconds)
        return token

    async def redeem_token(self, token: str) -> str | None:
        """The key id the token was issued to, while it lasts; it may be used again (EventSource reconnects)."""
        async with unavailable_when_failing("checking a stream token"):
            key_id = await self._client.get(self._tokens + _digest(token))
        return None if key_id is None else _text(key_id)


def _digest(token: str) -> str:
    # Stored by digest: whoever reads Redis learns no token that still works.
    return hashlib.sha256(token.encode()).hexdigest()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _entries(raw: list[tuple[bytes, dict[bytes, bytes]]]) -> list[tuple[str, bytes]]:
    return [(_text(entry_id), fields[_FIELD]) for entry_id, fields in raw]
