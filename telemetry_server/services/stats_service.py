"""StatsService: this worker's self-metrics posted for the others, and everyone's added up on request."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any, Protocol

from telemetry_server.errors import StorageUnavailable
from telemetry_server.services.stats_exposition import prometheus_text, stats_json
from telemetry_server.services.stats_records import Stats

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
        scope, workers, total = await self._total()
        return {"scope": scope, "workers": workers, **stats_json(total)}

    async def prometheus(self) -> bytes:
        _scope, _workers, total = await self._total()
        return prometheus_text(total)

    async def _total(self) -> tuple[str, list[str], Stats]:
        others: dict[str, dict[str, Any]] = {}
        scope = "this worker"
        if self._board is not None:
            try:
                others = await self._board.collect()
                scope = "all workers"
            except StorageUnavailable:
                pass
        total = Stats()
        total.add(self.stats)  # this worker's own figures as they are now, not as last posted
        for worker, posted in others.items():
            if worker == self.worker:
                continue
            try:
                total.add(Stats.from_json(posted))
            except (KeyError, TypeError, ValueError):
                # A worker of another version (other latency buckets, during a rolling deploy) must not take
                # these endpoints down: its figures are left out until it is replaced.
                log.warning("the stats posted by worker %s cannot be read; left out", worker)
        return scope, sorted({*others, self.worker}), total

    async def post_periodically(self) -> None:
        """Runs for the worker's lifetime; a Redis outage only delays the next post."""
        if self._board is None:
            return
        while True:
            with contextlib.suppress(StorageUnavailable):
                await self._board.post(self.worker, self.stats.to_json())
            await asyncio.sleep(POST_INTERVAL_SECONDS)
