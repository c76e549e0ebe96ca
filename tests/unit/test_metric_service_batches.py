"""Batches are stored in chunks cut by series (so buckets hold runs of one series), answered in the client's order."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from telemetry_server.models.metric import Metric, MetricInput
from telemetry_server.services.local_cache import LocalCache
from telemetry_server.services.metric_service import MetricService, WritePolicy
from telemetry_server.services.stats_records import Stats
from telemetry_server.services.two_level_cache import TwoLevelCache
from tests.fakes import InMemoryMetricStore, InMemoryQueryCache

T0 = datetime(2026, 11, 28, tzinfo=UTC)


class ChunkRecordingStore(InMemoryMetricStore):
    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[list[MetricInput]] = []

    async def insert(self, metrics: Sequence[MetricInput]) -> list[Metric]:
        self.chunks.append(list(metrics))
        return await super().insert(metrics)


def test_a_batch_sent_time_by_time_is_stored_series_by_series_and_answered_in_its_order() -> None:
    # As agents send: every series at one time, then every series at the next.
    batch = [
        MetricInput(f"cpu.{field}", ("host:a",), float(step * 10 + n), T0 + timedelta(seconds=step))
        for step in range(3)
        for n, field in enumerate(("user", "system"))
    ]
    store = ChunkRecordingStore()
    cache = TwoLevelCache(LocalCache(10, 5), InMemoryQueryCache(), Stats())
    service = MetricService(store, cache, WritePolicy(chunk_size=3))

    stored = asyncio.run(service.record_batch(batch))

    assert [(m.name, m.tags, m.value, m.timestamp) for m in stored] == [
        (m.name, m.tags, m.value, m.timestamp) for m in batch
    ]
    assert [{m.name for m in chunk} for chunk in store.chunks] == [{"cpu.system"}, {"cpu.user"}]
