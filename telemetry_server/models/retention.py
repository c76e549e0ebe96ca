"""Retention: where a reader's window must start when RETENTION is set, and the sizes of rollup intervals.

A point expires once its timestamp is older than `now - RETENTION`. The sweeper deletes expired points in the
background, so some may still be stored: every reader clamps its window to `retention_cutoff` to answer as if
the sweep had already run.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum


class RollupSize(StrEnum):
    """The intervals rollups summarize, aligned to the epoch (so to UTC minutes and hours)."""

    MINUTE = "1m"
    HOUR = "1h"

    @property
    def millis(self) -> int:
        return 60_000 if self is RollupSize.MINUTE else 3_600_000

    @property
    def collection(self) -> str:
        return f"rollups_{self.value}"


def retention_cutoff(now: datetime, retention: timedelta | None) -> datetime | None:
    """The oldest timestamp still kept: points at or after it are returned, points before it have expired.

    None when retention is off. Whole milliseconds, as stored timestamps are, so that a point at `cutoff - 1 ms`
    is always expired and one at `cutoff` never is.
    """
    if retention is None:
        return None
    return now.replace(microsecond=now.microsecond // 1000 * 1000) - retention


def clamp_start(start: datetime | None, cutoff: datetime | None) -> datetime | None:
    """A window's start moved forward to the retention cutoff (None stays open only without retention)."""
    if cutoff is None:
        return start
    return cutoff if start is None or start < cutoff else start


def interval_start(millis: int, size: RollupSize) -> int:
    """The start (ms since the epoch) of the rollup interval holding the timestamp `millis`."""
    return millis - millis % size.millis
