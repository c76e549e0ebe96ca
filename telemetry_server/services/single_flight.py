"""SingleFlight: a burst of identical cache misses makes one database query; the others wait for it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    def __init__(self) -> None:
        self._calls: dict[str, asyncio.Future[T]] = {}

    async def do(self, key: str, work: Callable[[], Awaitable[T]]) -> T:
        running = self._calls.get(key)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        # Followers may all have gone; reading the exception keeps asyncio from reporting it as lost.
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._calls[key] = future
        try:
            result = await work()
        except BaseException as exc:
            future.set_exception(exc)
            raise
        else:
            future.set_result(result)
            return result
        finally:
            del self._calls[key]
