"""The Redis clients of a worker (standalone, cluster or Sentinel, as REDIS_URI says), the one place where a
Redis failure becomes StorageUnavailable, and publishing on and following a pub/sub channel through outages.

On a cluster, channels are sharded (SPUBLISH/SSUBSCRIBE): a message goes to the nodes of its channel's slot
only, instead of over the cluster bus to every node, and a channel named with a key's hash tag can be
published to from a script that writes that key."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster, Sentinel
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterNode, ClusterPubSub
from redis.exceptions import ConnectionError, RedisError, TimeoutError

from telemetry_server.config import RedisTopology, Settings, parse_redis_uri
from telemetry_server.errors import StorageUnavailable

RedisClient = Redis | RedisCluster

# A lost subscription is tried again after this long.
RESUBSCRIBE_SECONDS = 1.0
# How long a subscriber on a cluster waits for a message before it looks again (a lost node raises sooner).
_WAIT_SECONDS = 5.0


def create_redis_client(settings: Settings, *, subscriber: bool = False) -> RedisClient:
    """One client (and so one pool, or one per cluster node) per worker, created in the lifespan after the fork;
    a subscriber's connection waits for messages as long as it takes, so it has no read timeout."""
    assert settings.redis_uri is not None
    timeout = settings.redis_timeout_ms / 1000
    read_timeout = None if subscriber else timeout
    connections = 4 if subscriber else settings.redis_pool_size  # a subscriber: a connection per channel followed
    target = parse_redis_uri(settings.redis_uri)
    # How a cluster or Sentinel client connects to each Redis node it talks to.
    per_node: dict[str, Any] = {
        "username": target.username,
        "password": target.password,
        "ssl": target.tls,
        "max_connections": connections,
        "socket_timeout": read_timeout,
        "socket_connect_timeout": timeout,
    }
    if target.topology is RedisTopology.CLUSTER:
        # A pool per node, of `connections` each. Commands failing on a node that is gone make the client ask
        # the others where the slots are now (a replica promoted), and are tried again.
        return RedisCluster(startup_nodes=[ClusterNode(host, port) for host, port in target.nodes], **per_node)
    if target.topology is RedisTopology.SENTINEL:
        assert target.service is not None
        # The sentinels are asked which node is the primary at each new connection, so after a failover too.
        sentinels = Sentinel(  # type: ignore[no-untyped-call]
            list(target.nodes),
            sentinel_kwargs={"socket_timeout": timeout, "socket_connect_timeout": timeout, "ssl": target.tls},
        )
        primary: Redis = sentinels.master_for(target.service, db=target.db, **per_node)
        return primary
    # A blocking pool: past REDIS_POOL_SIZE busy connections a command waits (up to the timeout) for one,
    # instead of failing with "Too many connections" and turning the cache off under load.
    pool = BlockingConnectionPool.from_url(
        settings.redis_uri,
        max_connections=connections,
        timeout=timeout,
        socket_timeout=read_timeout,
        socket_connect_timeout=timeout,
        retry_on_timeout=False,
        health_check_interval=0,
    )
    return Redis.from_pool(pool)


def shared_slot(namespace: str) -> str:
    """A key prefix that a cluster maps to one hash slot: the keys one script or MGET touches together must
    share it. On a standalone Redis it is only part of the name."""
    return "{" + namespace + "}"


def publish_command(client: RedisClient) -> str:
    """The command that publishes on `client`'s channels, for scripts that publish."""
    return "SPUBLISH" if isinstance(client, RedisCluster) else "PUBLISH"


async def publish(client: RedisClient, channel: str, message: bytes | str) -> None:
    if isinstance(client, RedisCluster):
        await client.spublish(channel, message)
    else:
        await client.publish(channel, message)


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
    subscriber: RedisClient,
    channel: str,
    on_message: Callable[[bytes], None],
    on_subscribed: Callable[[], Awaitable[None]] | None = None,
    on_lost: Callable[[StorageUnavailable | None], None] | None = None,
) -> None:
    """Deliver every message published on `channel` until cancelled, subscribing again a second after a failure.
    `on_subscribed` runs each time the subscription is (again) live; `on_lost` whenever messages may be missed
    from then on, with the failure when there was one."""
    while True:
        pubsub: PubSub | None = None
        failure = None
        try:
            async with unavailable_when_failing(f"subscribing to {channel}"):
                if isinstance(subscriber, RedisCluster):
                    pubsub = await _sharded_subscription(subscriber, channel)
                    messages = _sharded_messages(pubsub)
                else:
                    pubsub = subscriber.pubsub(ignore_subscribe_messages=True)
                    await pubsub.subscribe(channel)
                    messages = pubsub.listen()
                if on_subscribed is not None:
                    await on_subscribed()
                async for message in messages:
                    on_message(message["data"])
        except StorageUnavailable as exc:
            failure = exc
        finally:
            if on_lost is not None:
                on_lost(failure)
            if pubsub is not None:
                await pubsub.aclose()  # type: ignore[no-untyped-call]
        await asyncio.sleep(RESUBSCRIBE_SECONDS)


async def _sharded_subscription(cluster: RedisCluster, channel: str) -> ClusterPubSub:
    await cluster.initialize()  # once: the client's own start, which its aclose() undoes
    # The subscriber sends no other command, so nothing else would tell its client that the slots moved (a
    # failover): the cluster is asked where they are before each subscription.
    await cluster.nodes_manager.initialize()
    pubsub = cluster.pubsub(ignore_subscribe_messages=True)
    await pubsub.ssubscribe(channel)
    return pubsub


async def _sharded_messages(pubsub: ClusterPubSub) -> AsyncIterator[dict[str, Any]]:
    while pubsub.node_pubsub_mapping:  # the node's connection, kept while subscribed
        message = await pubsub.get_sharded_message(ignore_subscribe_messages=True, timeout=_WAIT_SECONDS)
        if message is not None and message["type"] == "smessage":
            yield message
    raise ConnectionError("the shard subscription was dropped")
