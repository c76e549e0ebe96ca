"""The one translation of Redis failures: transport and refusals alike become StorageUnavailable."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import BusyLoadingError, ConnectionError, OutOfMemoryError, TimeoutError

from telemetry_server.errors import StorageUnavailable
from telemetry_server.storage.redis_client import unavailable_when_failing


async def _raise_inside(exc: BaseException) -> None:
    async with unavailable_when_failing("read"):
        raise exc


@pytest.mark.parametrize(
    ("failure", "kind"),
    [
        (ConnectionError("refused"), "unreachable"),
        (TimeoutError("timed out"), "unreachable"),
        (BusyLoadingError("loading"), "unreachable"),
        (ConnectionResetError("reset by peer"), "unreachable"),
        (OutOfMemoryError("OOM command not allowed"), "failing"),
    ],
)
def test_every_redis_failure_is_storage_unavailable(failure: Exception, kind: str) -> None:
    with pytest.raises(StorageUnavailable) as raised:
        asyncio.run(_raise_inside(failure))
    assert raised.value.detail.startswith(f"Redis is {kind} (read: ")
    assert raised.value.__cause__ is failure


def test_a_bug_of_ours_is_not_hidden() -> None:
    with pytest.raises(KeyError):
        asyncio.run(_raise_inside(KeyError("x")))
