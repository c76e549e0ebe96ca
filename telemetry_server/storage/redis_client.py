"""The Redis client of a worker, and the one place where a Redis failure becomes StorageUnavailable."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import ConnectionError, RedisError, TimeoutError

from telemetry_server.config import Settings
from telemetry_server.errors import StorageUnavailable


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
