"""GroupCommitter: single writes from one worker gathered into one `insert_many` round trip.

A write is acknowledged only when the batch holding it is; a failed batch fails every write in it, so
nothing is half-acknowledged. At low load a write goes out on the next loop iteration (no added latency);
under load writes pile up while earlier batches are in flight and leave together.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")


class GroupCommitter(Generic[In, Out]):
    def __init__(
        self,
        commit: Callable[[Sequence[In]], Awaitable[Sequence[Out]]],
        *,
        max_batch: int,
        max_delay_seconds: float,
        max_in_flight: int,
        on_batch: Callable[[int], None] = lambda size: None,
    ) -> None:
        self._commit = commit
        self._max_batch = max_batch
        self._max_delay = max_delay_seconds
        self._max_in_flight = max_in_flight
        self._on_batch = on_batch
        self._pending: list[tuple[In, asyncio.Future[Out]]] = []
        self._in_flight: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | asyncio.Handle | None = None

    async def submit(self, item: In) -> Out:
        """Wait for the batch holding `item` to be committed; its failure is raised here."""
        future: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if len(self._pending) >= self._max_batch:
            self._flush()
        elif self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = (
                loop.call_later(self._max_delay, self._flush) if self._max_delay else loop.call_soon(self._flush)
            )
        return await future

    async def drain(self) -> None:
        """Commit everything pending and wait for every batch in flight (graceful shutdown)."""
        while self._pending or self._in_flight:
            if self._pending:
                self._start(self._take())
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    def _flush(self) -> None:
        self._timer = None
        # Past the in-flight limit, writes wait for a batch to finish, and so form a larger one.
        while self._pending and len(self._in_flight) < self._max_in_flight:
            self._start(self._take())

    def _take(self) -> list[tuple[In, asyncio.Future[Out]]]:
        batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
        return batch

    def _start(self, batch: list[tuple[In, asyncio.Future[Out]]]) -> None:
        task = asyncio.get_running_loop().create_task(self._run(batch))
        self._in_flight.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if self._pending and self._timer is None:
            self._flush()

    async def _run(self, batch: list[tuple[In, asyncio.Future[Out]]]) -> None:
        self._on_batch(len(batch))
        try:
            results = await self._commit([item for item, _ in batch])
        except BaseException as exc:  # every waiter learns the batch failed, whatever the reason
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
