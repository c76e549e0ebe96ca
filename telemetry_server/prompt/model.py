"""What the prompt parser is given (`PromptContext`) and what it gives back (`ParsedPrompt`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from telemetry_server.models.aggregation import AggregateQuery
from telemetry_server.models.metric_query import MetricQuery
from telemetry_server.prompt.names import NameIndex, NameMatch, index_names
from telemetry_server.prompt.time_words import TimeWindow


@dataclass(frozen=True, slots=True)
class PromptContext:
    """`index` is derived from `names` (built once per set of names, see `index_names`)."""

    now: datetime
    tz: str = "UTC"
    names: tuple[str, ...] = ()
    max_limit: int = 1000
    index: NameIndex = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", index_names(self.names))


@dataclass(frozen=True, slots=True)
class ParsedPrompt:
    """A prompt's query and how it was read: the name match, time phrase, typo corrections, defaults."""

    query: AggregateQuery | MetricQuery
    name: NameMatch | None = None
    window: TimeWindow | None = None
    corrections: tuple[tuple[str, str], ...] = ()
    defaults: tuple[str, ...] = ()
    parser: str = "rules"

    @property
    def kind(self) -> str:
        return "listing" if isinstance(self.query, MetricQuery) else "aggregate"
