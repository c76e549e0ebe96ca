"""The engine's entry points: an instant or range PromQL query against a SeriesSource, within limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from telemetry_server.promql.errors import BadData, Execution, PromQLError, Timeout, TooLarge
from telemetry_server.promql.source import SeriesSource

__all__ = [
    "BadData",
    "Execution",
    "PromQLError",
    "QueryLimits",
    "QueryResult",
    "Timeout",
    "TooLarge",
    "instant_query",
    "range_query",
]

ResultType = Literal["vector", "matrix", "scalar", "string"]


@dataclass(frozen=True, slots=True)
class QueryLimits:
    """Caps on what one query may touch; exceeding one raises TooLarge (series, points) or Timeout."""

    max_series: int = 10_000
    max_points: int = 50_000_000
    timeout_s: float = 30.0


@dataclass(slots=True)
class QueryResult:
    """An answer already in the shape of Prometheus' `data.result` (values as strings)."""

    result_type: ResultType
    result: Any
    warnings: list[str] = field(default_factory=list)


async def instant_query(text: str, time_ms: int, source: SeriesSource, limits: QueryLimits) -> QueryResult:
    raise BadData("the PromQL engine is not built yet")


async def range_query(
    text: str, start_ms: int, end_ms: int, step_ms: int, source: SeriesSource, limits: QueryLimits
) -> QueryResult:
    raise BadData("the PromQL engine is not built yet")
