"""RedisStatsBoard: each worker posts its self-metrics snapshot, so /stats can add up all workers."""

from __future__ import annotations

import time
from typing import Any

import orjson

from telemetry_server.storage.redis_client import RedisClient, unavailable_when_failing

# A worker that has not posted for this long is gone (stopped, or restarted under another id).
_STALE_SECONDS = 15


class RedisStatsBoard:
    def __init__(self, client: RedisClient, namespace: str) -> None:
        self._client = client
        self._key = f"{namespace}:stats"

    async def post(self, worker: str, snapshot: dict[str, Any]) -> None:
        entry = orjson.dumps({"at": time.time(), "snapshot": snapshot})
        async with unavailable_when_failing("posting stats"), self._client.pipeline(transaction=False) as pipe:
            pipe.hset(self._key, worker, entry)
            pipe.expire(self._key, _STALE_SECONDS * 4)
            await pipe.execute()

    async def collect(self) -> dict[str, dict[str, Any]]:
        async with unavailable_when_failing("collecting stats"):
            entries: dict[bytes, bytes] = await self._client.hgetall(self._key)  # type: ignore[assignment]
        now = time.time()
        fresh = {}
        for worker, raw in entries.items():
            entry = orjson.loads(raw)
            if now - entry["at"] < _STALE_SECONDS:
                fresh[worker.decode()] = entry["snapshot"]
        return fresh
