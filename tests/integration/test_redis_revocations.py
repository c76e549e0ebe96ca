"""RedisKeyRevocations against a real Redis: a published id reaches every worker that follows the channel."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from telemetry_server import engines
from telemetry_server.config import Settings
from telemetry_server.storage.redis_client import create_redis_client
from telemetry_server.storage.redis_revocations import RedisKeyRevocations


def test_a_revoked_id_reaches_every_worker(redis_factory: Callable[[], engines.Engine]) -> None:
    redis = redis_factory()
    settings = Settings(redis_uri=redis.uri, redis_timeout_ms=200)

    async def scenario() -> list[list[str]]:
        clients = [create_redis_client(settings) for _ in range(3)]
        subscribers = [create_redis_client(settings, subscriber=True) for _ in range(3)]
        workers = [RedisKeyRevocations(c, s, "ts:revtest") for c, s in zip(clients, subscribers, strict=True)]
        heard: list[list[str]] = [[], []]
        followers = [asyncio.create_task(w.listen(heard[i].append)) for i, w in enumerate(workers[1:])]
        try:
            for _ in range(100):  # until both are subscribed
                if await clients[0].pubsub_numsub("ts:revtest:revoked") == [(b"ts:revtest:revoked", 2)]:
                    break
                await asyncio.sleep(0.05)
            await workers[0].publish("0123456789abcdef")
            for _ in range(100):
                if all(heard):
                    break
                await asyncio.sleep(0.05)
        finally:
            for task in followers:
                task.cancel()
            await asyncio.gather(*followers, return_exceptions=True)
            for client in [*clients, *subscribers]:
                await client.aclose()
        return heard

    assert asyncio.run(scenario()) == [["0123456789abcdef"], ["0123456789abcdef"]]
