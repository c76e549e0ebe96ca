"""REDIS_URI naming a standalone Redis, a cluster or a Sentinel-managed primary."""

from __future__ import annotations

import pytest

from telemetry_server.config import RedisTarget, RedisTopology, load_settings, parse_redis_uri
from telemetry_server.errors import ConfigurationError


def test_a_cluster_is_named_by_any_of_its_nodes() -> None:
    assert parse_redis_uri("redis+cluster://10.0.0.1:7000,10.0.0.2,[::1]:7002") == RedisTarget(
        RedisTopology.CLUSTER, (("10.0.0.1", 7000), ("10.0.0.2", 6379), ("::1", 7002))
    )


def test_tls_and_credentials_apply_to_the_nodes() -> None:
    target = parse_redis_uri("rediss+cluster://app:s%40cret@cache-0:6380")
    assert (target.tls, target.username, target.password, target.nodes) == (True, "app", "s@cret", (("cache-0", 6380),))
    assert "s@cret" not in repr(target)


def test_a_sentinel_uri_names_the_sentinels_and_the_primary() -> None:
    target = parse_redis_uri("redis+sentinel://:pw@s1:26380,s2/mymaster/2")
    assert target == RedisTarget(
        RedisTopology.SENTINEL, (("s1", 26380), ("s2", 26379)), password="pw", service="mymaster", db=2
    )


def test_a_standalone_uri_is_left_to_redis_py() -> None:
    assert parse_redis_uri("redis://cache:6379/0").topology is RedisTopology.STANDALONE
    assert parse_redis_uri("unix:///run/redis.sock").topology is RedisTopology.STANDALONE


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("redis+sentinel://s1:26379", "primary's name"),
        ("redis+sentinel://s1/a/b/c", "primary's name"),
        ("redis+sentinel://s1/mymaster/x", "not a number"),
        ("redis+cluster://n1:7000/0", "no database"),
        ("redis+cluster://n1:7000,:7001", "names no host"),
        ("redis+cluster://n1:99999", "no valid port"),
        ("redis+cluster://n1:7000?ssl_cert_reqs=none", "no options"),
        ("memcached://n1", "scheme"),
    ],
)
def test_a_bad_uri_is_refused_with_what_is_wrong(uri: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_redis_uri(uri)
    with pytest.raises(ConfigurationError, match="REDIS_URI"):
        load_settings({"REDIS_URI": uri})


def test_settings_keep_the_uri_as_given() -> None:
    uri = "redis+cluster://n1:7000,n2:7001"
    assert load_settings({"REDIS_URI": uri}).redis_uri == uri
