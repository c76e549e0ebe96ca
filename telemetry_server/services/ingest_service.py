"""IngestService: points decoded from an agent's protocol, stored through the JSON batches' write path."""

from __future__ import annotations

from collections.abc import Sequence

from telemetry_server.models.metric import MetricInput
from telemetry_server.services.metric_service import MetricService
from telemetry_server.services.rate_limit import RateLimiter


class IngestService:
    def __init__(self, metrics: MetricService, limiter: RateLimiter) -> None:
        self._metrics = metrics
        self._limiter = limiter
        self.clock = metrics.clock

    async def store(self, client_id: str, points: Sequence[MetricInput]) -> None:
        """Rate-limited per point (the request paid for one on the way in), as a batch POST is; then stored
        with `record_batch`: chunked inserts, caches invalidated, acknowledged only once all is stored."""
        if not points:
            return
        if self._limiter.enabled:
            await self._limiter.admit(client_id, len(points) - 1)
        await self._metrics.record_batch(points)
