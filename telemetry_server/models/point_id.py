"""Point ids: where a point lives, written as hex, so a lookup by id needs no index of its own.

An id is 18 bytes, 36 lowercase hex characters: the series (u32), the timestamp in milliseconds since the
epoch (u48, enough for year 9999) and a sequence number (u64) that tells apart points of one series with the
same millisecond. The sequence is a writer id (u32, one per store instance, from a counter in MongoDB) above a
counter of that writer (u32): unique without coordination between workers or servers.

Ids issued before the time-series layout are MongoDB ObjectIds, 24 hex characters; they keep resolving through
the `legacy` collection the migration fills.
"""

from __future__ import annotations

from typing import NamedTuple

_HEX = frozenset("0123456789abcdef")
POINT_ID_LENGTH = 36
LEGACY_ID_LENGTH = 24
MAX_SERIES = 2**32 - 1
MAX_MILLIS = 2**48 - 1
MAX_SEQ = 2**64 - 1


class PointId(NamedTuple):
    series: int
    millis: int
    seq: int

    def encode(self) -> str:
        return f"{self.series:08x}{self.millis:012x}{self.seq:016x}"


def is_point_id(text: str) -> bool:
    """A well-formed id of either kind (it may still name no point)."""
    return len(text) in (POINT_ID_LENGTH, LEGACY_ID_LENGTH) and _HEX.issuperset(text)


def is_legacy_id(text: str) -> bool:
    return len(text) == LEGACY_ID_LENGTH and _HEX.issuperset(text)


def decode_point_id(text: str) -> PointId | None:
    """The parts of a new-layout id; None for a legacy id or anything else."""
    if len(text) != POINT_ID_LENGTH or not _HEX.issuperset(text):
        return None
    return PointId(int(text[:8], 16), int(text[8:20], 16), int(text[20:], 16))


class SeqCounter:
    """The sequence numbers of one writer: its id above a counter, so no two writers ever issue the same one."""

    def __init__(self, writer: int) -> None:
        if not 0 <= writer <= 0xFFFF_FFFF:
            raise ValueError("a writer id is a u32")
        self._base = writer << 32
        self._next = 0

    @property
    def exhausted(self) -> bool:
        return self._next > 0xFFFF_FFFF

    def take(self, count: int) -> range:
        """`count` fresh sequence numbers; the caller asks for a new writer id once `exhausted`."""
        if self._next + count > 0x1_0000_0000:
            raise OverflowError("this writer has issued all its sequence numbers")
        start = self._base + self._next
        self._next += count
        return range(start, start + count)
