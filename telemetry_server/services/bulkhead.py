"""Bulkhead: at most so many reads of one heavy kind at once per worker, each within one time limit."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from telemetry_server.errors import QueryTimedOut

T = TypeVar("T")

# The engine is sent the time left as its own limit (maxTimeMS) and answers "time limit exceeded" when it runs
# out; the backstop lets that answer arrive rather than cancelling the request a hair before it does.
_BACKSTOP_GRACE_SECONDS = 0.25


class TimeBudget:
    """What is left of one request's time limit, in seconds, to hand to each database call it makes."""

    __slots__ = ("_deadline", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        self._loop = loop
        self._deadline = deadline

    def left(self) -> float:
        return max(self._deadline - self._loop.time(), 0.0)


class Bulkhead:
    """Heavy reads wait for one of `capacity` slots and get `timeout_seconds` in all, the wait included.

    The capacities, with the group commits' slots, fit in the MongoDB pool (config.py checks it), so heavy
    reads can never hold the connections writes need. Past the limit the request is a 503 with Retry-After,
    and the database stops the work too, because each call is given the time left.
    """

    def __init__(self, capacity: int, timeout_seconds: float, what: str, advice: str) -> None:
        self._slots = asyncio.Semaphore(capacity)
        self.timeout_seconds = timeout_seconds
        self._refusal = f"{what} did not finish within {timeout_seconds:g} s: {advice}"

    def sharing(self, timeout_seconds: float, what: str, advice: str) -> Bulkhead:
        """Reads of another kind, with a time limit of their own, that take these same slots (so that together
        they still fit in the pool)."""
        other = Bulkhead(1, timeout_seconds, what, advice)
        other._slots = self._slots
        return other

    async def run(self, work: Callable[[TimeBudget], Awaitable[T]]) -> T:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_seconds
        try:
            async with asyncio.timeout_at(deadline):
                await self._slots.acquire()
            try:
                async with asyncio.timeout_at(deadline + _BACKSTOP_GRACE_SECONDS):
                    return await work(TimeBudget(loop, deadline))
            finally:
                self._slots.release()
        except (TimeoutError, QueryTimedOut):
            raise QueryTimedOut(self._refusal) from None
