"""Asking a language model for a query: the chat request it is sent, and how its answer is checked.

Pure: the HTTP call is services/llm_prompt_parser.py. The request asks an OpenAI-compatible chat
completions API for JSON constrained to `ANSWER_SCHEMA`, whose fields are the query model's parameters
(their closed sets taken from the model itself). The answer is never trusted: it becomes query parameters
and goes through the same parsers as a client's `GET /metrics/aggregate` or `GET /metrics`, so a model
can ask for nothing a client could not, and anything else is refused as a client's request would be.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson

from telemetry_server.errors import FieldError, ValidationFailed
from telemetry_server.models.aggregation import AGGREGATE_PATH, AggregateFn, bucket_labels
from telemetry_server.models.metric_query import SortOrder
from telemetry_server.models.time_range import parse_duration, window_end
from telemetry_server.models.timestamps import EARLIEST, format_timestamp
from telemetry_server.models.value_range import VALUE_PARAMS
from telemetry_server.prompt.grammar import parse_prompt
from telemetry_server.prompt.model import ParsedPrompt, PromptContext
from telemetry_server.prompt.plugin import query_from_params

PARSER_NAME = "llm"
MAX_ANSWER_TOKENS = 400  # an answer with every field set is about 350 characters: more is a model rambling
MAX_NAMES_SHOWN = 200  # the names the model is told about, so a large catalogue cannot blow up the request
_NULL = {"type": "null"}
_TEXT = {"type": "string"}
_NUMBER = {"type": "number"}
_INTEGER = {"type": "integer"}
# The answer's fields that are one query parameter each, under the same name (`order` is `sort` in a listing).
_SCALARS = ("fn", "name", "name_prefix", "from", "to", *VALUE_PARAMS, "bucket", "group_by", "top", "order", "limit")
_KINDS = ("aggregate", "listing")


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, _NULL]}


def _choice(values: list[str]) -> dict[str, Any]:
    return {"type": "string", "enum": values}


def answer_schema() -> dict[str, Any]:
    """The JSON Schema of an answer, in the form OpenAI's strict structured outputs accept: every field
    required (null when the question does not say), no other fields."""
    properties: dict[str, Any] = {
        "kind": _choice(list(_KINDS)),
        "fn": _nullable(_choice([fn.value for fn in AggregateFn])),
        "name": _nullable(_TEXT),
        "name_prefix": _nullable(_TEXT),
        "tags": {"type": "array", "items": _TEXT},
        "range": _nullable(_TEXT),
        "from": _nullable(_TEXT),
        "to": _nullable(_TEXT),
        "value_gt": _nullable(_NUMBER),
        "value_gte": _nullable(_NUMBER),
        "value_lt": _nullable(_NUMBER),
        "value_lte": _nullable(_NUMBER),
        "bucket": _nullable(_choice(bucket_labels())),
        "group_by": _nullable(_TEXT),
        "top": _nullable(_INTEGER),
        "order": _nullable(_choice([order.value for order in SortOrder])),
        "limit": _nullable(_INTEGER),
    }
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


ANSWER_SCHEMA = answer_schema()
_EMPTY_ANSWER: dict[str, Any] = dict.fromkeys(ANSWER_SCHEMA["properties"]) | {"tags": []}
# Worked examples for the model, read by the rules against the real clock, so their windows are right.
_SHOWN_NAMES = ("cpu.load", "disk.used", "http.request.duration")
_SHOWN = ("top 3 hosts by average cpu.load this week", "the latest 20 disk.used readings above 90 today")


def answer_of(parsed: ParsedPrompt) -> dict[str, Any]:
    """A parsed prompt written as the model is asked to answer: the inverse of `read_answer`."""
    answer = _EMPTY_ANSWER | {"kind": parsed.kind, "tags": []}
    for key, value in parsed.query.to_params():
        if key == "tag":
            answer["tags"].append(value)
        elif key == "sort":
            answer["order"] = value
        elif key in ("top", "limit"):
            answer[key] = int(value)
        elif key.startswith("value_"):
            answer[key] = float(value)
        elif key in answer:
            answer[key] = value
    return answer


def instructions(context: PromptContext) -> str:
    """The system message: the task, the clock and zone, the names that exist, and worked examples."""
    names = ", ".join(context.names[:MAX_NAMES_SHOWN]) or "(none yet)"
    example_context = replace(context, names=_SHOWN_NAMES)
    shown = "\n".join(
        f"Question: {question}\nAnswer: {orjson.dumps(answer_of(parse_prompt(question, example_context))).decode()}"
        for question in _SHOWN
    )
    return (
        "You turn a question about telemetry metrics into one query, answered as JSON.\n"
        f"Now is {format_timestamp(context.now)}; the user's time zone is {context.tz}.\n"
        f"Metric names: {names}.\n"
        'Each reading has a name, a value and tags written "key:value" (host:web-1, region:eu).\n'
        'kind "aggregate": fn over the matching readings, optionally per time bucket, or per group_by (name or a '
        'tag key) keeping the top N groups in order. kind "listing": up to limit readings, order desc (newest '
        "first) or asc.\n"
        "Windows: range for the last N minutes, hours or days (15m, 1h, 7d); from and to (RFC 3339) for "
        "calendar days and dates. Use null for whatever the question does not say.\n"
        f"{shown}"
    )


def chat_request(prompt: str, context: PromptContext, model: str) -> dict[str, Any]:
    """The body of `POST {QUERY_LLM_URL}/chat/completions`: structured output constrained to the schema."""
    return {
        "model": model,
        "messages": [
            {"role": "system", "content": instructions(context)},
            {"role": "user", "content": prompt},
        ],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "telemetry_query", "strict": True, "schema": ANSWER_SCHEMA},
        },
        "temperature": 0,
        "max_tokens": MAX_ANSWER_TOKENS,
    }


def read_chat_reply(body: bytes) -> str:
    """The assistant's message of a chat completion; ValueError when the reply is not a usable completion."""
    try:
        reply = orjson.loads(body)
        choice = reply["choices"][0]
        message = choice["message"]
        refusal, content, finish = message.get("refusal"), message.get("content"), choice.get("finish_reason")
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError):
        raise ValueError(f"not a chat completion: {body[:200]!r}") from None
    if refusal:
        raise ValueError(f"the model refused: {str(refusal)[:200]}")
    if finish == "length":
        raise ValueError(f"the answer was cut off at {MAX_ANSWER_TOKENS} tokens")
    if not isinstance(content, str):
        raise ValueError("the completion holds no text")
    return content


def read_answer(content: str, context: PromptContext) -> ParsedPrompt:
    """The query a model's answer asks for; ValidationFailed, naming each bad field, when it asks for none."""
    try:
        answer = orjson.loads(content)
    except orjson.JSONDecodeError:
        raise ValidationFailed([], detail=f"the model's answer is not JSON: {content[:100]!r}") from None
    if not isinstance(answer, dict):
        raise ValidationFailed([], detail="the model's answer is not a JSON object")
    errors = [FieldError(str(key)[:64], "is not a field of a query") for key in answer if key not in _EMPTY_ANSWER]
    kind = answer.get("kind")
    if kind not in _KINDS:
        errors.append(FieldError("kind", f"must be one of {', '.join(_KINDS)}"))
    params: list[tuple[str, str]] = []
    for field in _SCALARS:
        value = answer.get(field)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            errors.append(FieldError(field, "must be a string, a number or null"))
            continue
        params.append(("sort" if kind == "listing" and field == "order" else field, str(value)))
    tags = answer.get("tags")
    tags = [] if tags is None else tags
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        errors.append(FieldError("tags", "must be a list of strings"))
    else:
        params += [("tag", tag) for tag in tags]
    params += _window(answer.get("range"), kind, context, errors)
    if errors:
        raise ValidationFailed(errors)
    if kind == "listing":
        return query_from_params("/metrics", params, context, PARSER_NAME)
    return query_from_params(AGGREGATE_PATH, [*params, ("tz", context.tz)], context, PARSER_NAME)


def _window(length: object, kind: object, context: PromptContext, errors: list[FieldError]) -> list[tuple[str, str]]:
    """`range` is a parameter of aggregates; a listing gets the same window as from/to."""
    if length is None:
        return []
    if not isinstance(length, str):
        errors.append(FieldError("range", "must be a duration such as 15m, 1h or 7d"))
        return []
    if kind != "listing":
        return [("range", length)]
    duration = parse_duration(length)
    if duration is None:
        errors.append(FieldError("range", "must be a duration such as 15m, 1h or 7d"))
        return []
    end = window_end(context.now)
    return [("from", format_timestamp(max(EARLIEST, end - duration))), ("to", format_timestamp(end))]
