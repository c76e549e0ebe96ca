"""A parsed prompt as a `/query` answer shows it: the `interpretation` object and the `equivalent` URL."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from telemetry_server.models.aggregation import AggregateQuery
from telemetry_server.models.metric_query import MetricQuery
from telemetry_server.models.timestamps import format_timestamp
from telemetry_server.prompt.model import ParsedPrompt


def equivalent(parsed: ParsedPrompt) -> str:
    """The structured request that asks the same question: `/metrics/aggregate?...` or `/metrics?...`."""
    if isinstance(parsed.query, MetricQuery):
        return f"/metrics?{urlencode(parsed.query.to_params())}"
    return parsed.query.url()


def interpretation(parsed: ParsedPrompt, tz: str) -> dict[str, Any]:
    query = parsed.query.to_json() if isinstance(parsed.query, AggregateQuery) else listing_json(parsed.query)
    time = None
    if parsed.window is not None:
        time = {"phrase": parsed.window.phrase, "from": query["from"], "to": query["to"], "tz": tz}
    return {
        "kind": parsed.kind,
        "parser": parsed.parser,
        "query": query,
        "name": parsed.name.to_json() if parsed.name else None,
        "time": time,
        "corrections": [{"typed": typed, "read_as": read} for typed, read in parsed.corrections],
        "defaults": list(parsed.defaults),
    }


def listing_json(query: MetricQuery) -> dict[str, Any]:
    return {
        "name": query.name,
        "tags": list(query.tags),
        "from": format_timestamp(query.start) if query.start else None,
        "to": format_timestamp(query.end) if query.end else None,
        "value": query.values.to_json(),
        "limit": query.limit,
        "sort": query.order.value,
    }
