"""The LLM parser's pure half: the request it sends, and how a model's answer is read and refused."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from telemetry_server.errors import PromptNotUnderstood, ValidationFailed
from telemetry_server.models.aggregation import AggregateFn, AggregateQuery, bucket_labels
from telemetry_server.models.metric_query import MetricQuery
from telemetry_server.prompt.grammar import parse_prompt
from telemetry_server.prompt.llm import ANSWER_SCHEMA, answer_of, chat_request, read_answer, read_chat_reply
from telemetry_server.prompt.model import PromptContext
from tests.fake_llm import completion
from tests.unit.prompt.test_grammar import CONTEXT, CORPUS

NOW = datetime(2026, 11, 27, 15, 30, 12, 345000, tzinfo=UTC)


def answer(**fields: Any) -> str:
    return orjson.dumps({"tags": [], **fields}).decode()


def test_the_request_asks_for_json_constrained_to_the_query_schema() -> None:
    context = PromptContext(NOW, "Europe/Paris", ("cpu.load", "errors"))
    body = chat_request("how hot did the servers run", context, "smollm2")
    assert body["model"] == "smollm2"
    assert body["temperature"] == 0
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "telemetry_query", "strict": True, "schema": ANSWER_SCHEMA},
    }
    system, user = body["messages"]
    assert user == {"role": "user", "content": "how hot did the servers run"}
    assert system["role"] == "system"
    for fact in ("2026-11-27T15:30:12.345Z", "Europe/Paris", "cpu.load, errors"):
        assert fact in system["content"]


def test_the_schema_is_strict_and_its_closed_sets_come_from_the_model() -> None:
    properties = ANSWER_SCHEMA["properties"]
    assert ANSWER_SCHEMA["required"] == list(properties)
    assert ANSWER_SCHEMA["additionalProperties"] is False
    assert properties["fn"]["anyOf"][0]["enum"] == [fn.value for fn in AggregateFn]
    assert properties["bucket"]["anyOf"][0]["enum"] == bucket_labels()


def test_every_reading_of_the_rules_survives_the_trip_through_an_answer() -> None:
    """What the model is shown as examples (answer_of) is exactly what read_answer takes back."""
    parsed_count = 0
    for prompt, _ in CORPUS:
        try:
            parsed = parse_prompt(prompt, CONTEXT)
        except PromptNotUnderstood:
            continue
        read = read_answer(orjson.dumps(answer_of(parsed)).decode(), CONTEXT)
        assert read.query == parsed.query, prompt
        assert read.parser == "llm"
        parsed_count += 1
    assert parsed_count > 100


def test_a_listing_answer_may_give_its_window_as_a_range() -> None:
    read = read_answer(answer(kind="listing", name="cpu.load", range="1h", limit=5, order="asc"), CONTEXT)
    assert isinstance(read.query, MetricQuery)
    assert read.query.limit == 5
    assert read.query.order.value == "asc"
    assert read.query.start == datetime(2026, 11, 27, 14, 30, 13, tzinfo=UTC)
    assert read.query.end == datetime(2026, 11, 27, 15, 30, 13, tzinfo=UTC)


def test_an_aggregate_answer_follows_the_prompt_zone() -> None:
    paris = PromptContext(NOW, "Europe/Paris", ("cpu.load",))
    read = read_answer(answer(kind="aggregate", fn="p95", name="cpu.load", bucket="1h", range="1d"), paris)
    assert isinstance(read.query, AggregateQuery)
    assert read.query.tz == "Europe/Paris"
    assert read.query.fn is AggregateFn.P95


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (answer(kind="aggregate", fn="median"), "fn"),
        (answer(kind="aggregate", fn="avg", top=3), "top"),
        (answer(kind="aggregate", fn="avg", group_by="host", top=3, bucket="1h"), "top"),
        (answer(kind="aggregate", fn="avg", limit=10), "limit"),
        (answer(kind="aggregate", name="a b c"), "name"),
        (answer(kind="aggregate", top=True, group_by="host"), "top"),
        (answer(kind="listing", limit=100_000), "limit"),
        (answer(kind="listing", range="an hour"), "range"),
        (answer(kind="report"), "kind"),
        (answer(fn="avg"), "kind"),
        (answer(kind="aggregate", tags="host:a"), "tags"),
        (answer(kind="aggregate", tags=["$where"]), "tags[0]"),
        (answer(kind="aggregate", where={"$gt": ""}), "where"),
    ],
)
def test_an_answer_the_query_model_refuses_names_the_field(content: str, field: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        read_answer(content, CONTEXT)
    assert field in [error.field for error in refused.value.errors]


@pytest.mark.parametrize("content", ["", "{not json", "[1, 2]", '"aggregate"', "null"])
def test_an_answer_that_is_not_a_json_object_is_refused(content: str) -> None:
    with pytest.raises(ValidationFailed):
        read_answer(content, CONTEXT)


def test_the_answer_is_the_completion_message() -> None:
    assert read_chat_reply(completion('{"kind": "listing"}')) == '{"kind": "listing"}'


@pytest.mark.parametrize(
    "reply",
    [
        completion('{"kind": "listing"', finish_reason="length"),
        completion(None, refusal="I cannot help with that"),
        completion(None),
        b'{"error": {"message": "overloaded", "type": "server_error"}}',
        b'{"choices": []}',
        b"<html>Bad Gateway</html>",
    ],
)
def test_a_reply_that_is_not_a_usable_completion_is_refused(reply: bytes) -> None:
    with pytest.raises(ValueError, match=r"."):
        read_chat_reply(reply)
