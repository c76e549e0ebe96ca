"""What an aggregation answers with: its rows, and the order they come in (`rank_rows`, the one tie-break)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from telemetry_server.models.aggregation import AggregateFn, AggregateQuery
from telemetry_server.models.metric_query import SortOrder
from telemetry_server.models.timestamps import format_timestamp


@dataclass(frozen=True, slots=True)
class Row:
    value: float | int | None
    count: int
    bucket: datetime | None = None
    group: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.bucket is not None:
            out["bucket"] = format_timestamp(self.bucket)
        if self.group is not None:
            out["group"] = self.group
        out["value"] = self.value
        out["count"] = self.count
        return out


def rank_rows(rows: list[Row], query: AggregateQuery) -> list[Row]:
    """Top-k by value (ties by group), or chronological then by group; counts are whole numbers."""
    if query.fn is AggregateFn.COUNT:
        rows = [Row(row.count, row.count, row.bucket, row.group) for row in rows]
    if query.top is not None:
        descending = query.order is SortOrder.DESC
        rows.sort(key=lambda row: row.group or "")
        rows.sort(key=lambda row: row.value or 0.0, reverse=descending)
        return rows[: query.top]
    return sorted(rows, key=lambda row: (row.bucket or datetime.min.replace(tzinfo=UTC), row.group or ""))
