"""RedisKeyRevocations: a revoked API key's id, published to every worker of every instance at once."""

from __future__ import annotations

from collections.abc import Callable

from telemetry_server.storage.redis_client import RedisClient, follow_channel, publish, unavailable_when_failing


class RedisKeyRevocations:
    """Shares the worker's Redis clients with the cache, which closes them."""

    def __init__(self, client: RedisClient, subscriber: RedisClient, namespace: str) -> None:
        self._client = client
        self._subscriber = subscriber
        self._channel = f"{namespace}:revoked"

    async def publish(self, key_id: str) -> None:
        async with unavailable_when_failing("publishing a revocation"):
            await publish(self._client, self._channel, key_id)

    async def listen(self, on_revoked: Callable[[str], None]) -> None:
        """Until cancelled. One missed while Redis is away is still refused within KEY_CACHE_SECONDS, read from
        MongoDB; the cache logs the outage itself."""
        await follow_channel(self._subscriber, self._channel, lambda data: on_revoked(data.decode()))
