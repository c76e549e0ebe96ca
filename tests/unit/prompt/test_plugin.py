"""The seam for other prompt parsers: loading one by `module:callable`, and validating its URL answers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from telemetry_server.errors import ConfigurationError, ValidationFailed
from telemetry_server.models.aggregation import AggregateQuery
from telemetry_server.models.metric_query import MetricQuery
from telemetry_server.prompt.model import PromptContext
from telemetry_server.prompt.plugin import load_prompt_plugin, query_from_url

CONTEXT = PromptContext(datetime(2026, 11, 27, 15, 30, tzinfo=UTC), "Europe/Paris", ("cpu.load",), max_limit=50)


def test_a_plugin_is_loaded_by_module_and_callable() -> None:
    assert load_prompt_plugin(None) is None
    assert load_prompt_plugin("json:dumps") is not None


@pytest.mark.parametrize("spec", ["no_such_module_here:parse", "json:no_such_callable", "json:__doc__"])
def test_a_plugin_that_cannot_be_loaded_names_the_variable(spec: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        load_prompt_plugin(spec)
    assert "QUERY_PARSER" in str(refused.value)


def test_a_url_answer_is_read_by_the_parameter_parsers() -> None:
    aggregate = query_from_url("/metrics/aggregate?fn=max&name=cpu.load&range=1h", CONTEXT)
    assert isinstance(aggregate.query, AggregateQuery)
    assert aggregate.parser == "plugin"
    assert aggregate.query.end == datetime(2026, 11, 27, 15, 30, tzinfo=UTC)
    listing = query_from_url("/metrics?name=cpu.load&limit=20", CONTEXT)
    assert isinstance(listing.query, MetricQuery)


@pytest.mark.parametrize(
    "url", ["/metrics/aggregate?fn=median", "/metrics/aggregate?top=3", "/metrics?limit=500", "/admin/keys?a=b"]
)
def test_an_invalid_url_answer_is_refused(url: str) -> None:
    with pytest.raises(ValidationFailed):
        query_from_url(url, CONTEXT)
