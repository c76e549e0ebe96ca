"""The seam between the PromQL engine and storage: label matchers in, raw series with their samples out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

MatchOp = Literal["=", "!=", "=~", "!~"]


@dataclass(frozen=True, slots=True)
class Matcher:
    """One label matcher of a selector; regexes (=~, !~) are fully anchored, as in Prometheus."""

    name: str
    op: MatchOp
    value: str


@dataclass(frozen=True, slots=True)
class RawSeries:
    """One series with its samples in the asked window."""

    labels: dict[str, str]  # includes "__name__"
    timestamps: Sequence[int]  # ms, ascending
    values: Sequence[float]


class SeriesSource(Protocol):
    async def select(self, matchers: Sequence[Matcher], start_ms: int, end_ms: int) -> list[RawSeries]:
        """Every series matching all matchers, with its samples in [start_ms, end_ms] (inclusive)."""
        ...
