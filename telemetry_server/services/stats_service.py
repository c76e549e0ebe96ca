"""StatsService: this worker's self-metrics posted for the others, and everyone's added up on request."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any, Protocol

from telemetry_server.errors import StorageUnavailable
from telemetry_server.services.stats import Stats, merge_snapshots, to_prometheus

log = logging.getLogger("telemetry_server.stats")

POST_INTERVAL_SECONDS = 1.0


class StatsBoard(Protocol):
    async def post(self, worker: str, snapshot: dict[str, Any]) -> None: ...
    async def collect(self) -> dict[str, dict[str, Any]]: ...


class StatsService:
    def __init__(self, stats: Stats, board: StatsBoard | None) -> None:
        self.stats = stats
        self._board = board
        self.worker = f"{os.uname().nodename}:{os.getpid()}"

    async def overview(self) -> dict[str, Any]:
        """All workers' figures added up; only this worker's when Redis cannot be reached."""
        snapshots = {self.worker: self.stats.snapshot()}
        scope = "this worker"
        if self._board is not None:
            try:
                snapshots = {**await self._board.collect(), self.worker: self.stats.snapshot()}
                scope = "all workers"
            except StorageUnavailable:
                pass
        return {"scope": scope, "workers": sorted(snapshots), **merge_snapshots(list(snapshots.values()))}

    async def prometheus(self) -> str:
        return to_prometheus(await self.overview())

    async def post_periodically(self) -> None:
        """Runs for the worker's lifetime; a Redis outage only delays the next post."""
        if self._board is None:
            return
        while True:
            with contextlib.suppress(StorageUnavailable):
                await self._board.post(self.worker, self.stats.snapshot())
            await asyncio.sleep(POST_INTERVAL_SECONDS)
