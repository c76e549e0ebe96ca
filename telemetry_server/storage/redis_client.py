"""The Redis clients of a worker, the one place where a Redis failure becomes StorageUnavailable, and following
a pub/sub channel through outages."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import ConnectionError, RedisError, TimeoutError

from telemetry_server.config import Settings
from telemetry_server.errors import StorageUnavailable

# A lost subscription is tried again after this long.
RESUBSCRIBE_SECONDS = 1.0


def create_redis_client(settings: Settings, *, subscriber: bool = False) -> Redis:
    """One client (and so one pool) per worker, created in the lifespan after the fork; a subscriber's
    connection waits for messages as long as it takes, so it has no read timeout."""
    assert settings.redis_uri is not None
    timeout = settings.redis_timeout_ms / 1000
    # A blocking pool: past REDIS_POOL_SIZE busy connections a command waits (up to the timeout) for one,
    # instead of failing with "Too many connections" and turning the cache off under load.
    pool = BlockingConnectionPool.from_url(
        settings.redis_uri,
        max_connections=4 if subscriber else settings.redis_pool_size,  # a connection per channel followed
        timeout=timeout,
        socket_timeout=None if subscriber else timeout,
        socket_connect_timeout=timeout,
        retry_on_timeout=False,
        health_check_interval=0,
    )
    return Redis.from_pool(pool)


@asynccontextmanager
async def unavailable_when_failing(action: str) -> AsyncIterator[None]:
    """Every Redis failure becomes StorageUnavailable, a refusal (out of memory, a read-only replica) as much as
    a lost connection: Redis only speeds the server up and shares its limits, so whoever calls it carries on
    without it rather than failing the request. The message says which of the two it was."""
    try:
        yield
    except (ConnectionError, TimeoutError, OSError) as exc:  # OSError: a socket error redis-py did not wrap
        raise StorageUnavailable(f"Redis is unreachable ({action}: {exc})") from exc
    except RedisError as exc:
        raise StorageUnavailable(f"Redis is failing ({action}: {exc})") from exc


async def follow_channel(
    subscriber: Redis,
    channel: str,
    on_message: Callable[[bytes], None],
    on_subscribed: Callable[[], Awaitable[None]] | None = None,
    on_lost: Callable[[StorageUnavailable | None], None] | None = None,
) -> None:
    """Deliver every message published on `channel` until cancelled, subscribing again a second after a failure.
    `on_subscribed` runs each time the subscription is (again) live; `on_lost` whenever messages may be missed
    from then on, with the failure when there was one."""
    while True:
        pubsub = subscriber.pubsub(ignore_subscribe_messages=True)
        failure = None
        try:
            async with unavailable_when_failing(f"subscribing to {channel}"):
                await pubsub.subscribe(channel)
                if on_subscribed is not None:
                    await on_subscribed()
                async for message in pubsub.listen():
                    on_message(message["data"])
        except StorageUnavailable as exc:
            failure = exc
        finally:
            if on_lost is not None:
                on_lost(failure)
            await pubsub.aclose()  # type: ignore[no-untyped-call]
        await asyncio.sleep(RESUBSCRIBE_SECONDS)
