"""The seam for other prompt parsers (`QUERY_PARSER`): what one is given, what it may answer, how it loads.

The rules always run first. A parser behind them gets a `PromptRequest` and answers with a `ParsedPrompt`,
with the equivalent URL of a query (validated by the same parameter parsers as a client's request), or
None to keep the rules' reading. The query service calls it.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from telemetry_server.errors import ConfigurationError, PromptNotUnderstood, ValidationFailed
from telemetry_server.models.aggregation import AGGREGATE_PATH, parse_aggregate_query
from telemetry_server.models.metric_query import parse_metric_query
from telemetry_server.prompt.grammar import DEFAULT_LISTING_SIZE
from telemetry_server.prompt.model import ParsedPrompt, PromptContext


@dataclass(frozen=True, slots=True)
class PromptRequest:
    """What a QUERY_PARSER plugin is given: the prompt, its context, and what the rules made of it."""

    prompt: str
    context: PromptContext
    rules: ParsedPrompt | None
    rules_error: PromptNotUnderstood | None


PluginResult = ParsedPrompt | str | None
PromptPlugin = Callable[[PromptRequest], PluginResult | Awaitable[PluginResult]]


def load_prompt_plugin(spec: str | None) -> PromptPlugin | None:
    """`module:callable` → the callable; imported once at startup, never fetched from anywhere."""
    if spec is None:
        return None
    module_name, _, attribute = spec.partition(":")
    try:
        plugin = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError("QUERY_PARSER", f"cannot load {spec!r}: {exc}") from None
    if not callable(plugin):
        raise ConfigurationError("QUERY_PARSER", f"{spec!r} is not callable")
    loaded: PromptPlugin = plugin
    return loaded


def query_from_url(url: str, context: PromptContext) -> ParsedPrompt:
    """A plugin may answer with the equivalent URL: `/metrics/aggregate?...` or `/metrics?...`."""
    parts = urlsplit(url)
    return query_from_params(parts.path, parse_qsl(parts.query, keep_blank_values=True), context, "plugin")


def query_from_params(
    path: str, params: Sequence[tuple[str, str]], context: PromptContext, parser: str
) -> ParsedPrompt:
    """The query of `path` with these parameters, validated exactly as a client's request; ValidationFailed."""
    if path == AGGREGATE_PATH:
        return ParsedPrompt(parse_aggregate_query(params, context.now), parser=parser)
    if path == "/metrics":
        return ParsedPrompt(parse_metric_query(params, DEFAULT_LISTING_SIZE, context.max_limit), parser=parser)
    raise ValidationFailed([], detail=f"not a query URL: {path[:100]!r}")
