"""The prompt corpus: prompts (paraphrases, odd casing, filler, typos) → the query they mean, and refusals."""

# ruff: noqa: E501 (one prompt and its meaning per line reads best as a table)

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telemetry_server.errors import PromptNotUnderstood
from telemetry_server.prompt.grammar import parse_prompt
from telemetry_server.prompt.model import PromptContext
from telemetry_server.prompt.rendering import equivalent, interpretation

NOW = datetime(2026, 11, 27, 15, 30, 12, 345000, tzinfo=UTC)  # a Friday
NAMES = (
    "cpu.load", "cpu.idle", "latency.ms", "http.request.duration", "temperature", "errors", "requests",
    "events.login", "events.logout", "events.signup", "disk.used", "memory.used", "queue_depth",
)  # fmt: skip
CONTEXT = PromptContext(NOW, "UTC", NAMES)


def span(start: str, end: str) -> str:
    return f"from=2026-{start}.000Z&to=2026-{end}.000Z"


TODAY = span("11-27T00:00:00", "11-28T00:00:00")
YESTERDAY = span("11-26T00:00:00", "11-27T00:00:00")
THIS_WEEK = span("11-23T00:00:00", "11-30T00:00:00")
LAST_WEEK = span("11-16T00:00:00", "11-23T00:00:00")
THIS_MONTH = span("11-01T00:00:00", "12-01T00:00:00")
LAST_MONTH = span("10-01T00:00:00", "11-01T00:00:00")
LAST_HOUR = span("11-27T14:30:13", "11-27T15:30:13")
LAST_15M = span("11-27T15:15:13", "11-27T15:30:13")
LAST_2H = span("11-27T13:30:13", "11-27T15:30:13")
LAST_24H = span("11-26T15:30:13", "11-27T15:30:13")
LAST_7D = span("11-20T15:30:13", "11-27T15:30:13")
SINCE_MONDAY = span("11-23T00:00:00", "11-27T15:30:13")
AGG = "/metrics/aggregate"

CORPUS = [
    # top-k
    ("what are the top 5 events today", f"{AGG}?fn=count&name_prefix=events&group_by=name&top=5&order=desc&{TODAY}"),
    ("What are the TOP 5 events today?", f"{AGG}?fn=count&name_prefix=events&group_by=name&top=5&order=desc&{TODAY}"),
    ("top five events today please", f"{AGG}?fn=count&name_prefix=events&group_by=name&top=5&order=desc&{TODAY}"),
    ("top 5 metrics today", f"{AGG}?fn=count&group_by=name&top=5&order=desc&{TODAY}"),
    ("top 3 names by count yesterday", f"{AGG}?fn=count&group_by=name&top=3&order=desc&{YESTERDAY}"),
    ("top 3 hosts by average cpu.load this week", f"{AGG}?fn=avg&name=cpu.load&group_by=host&top=3&order=desc&{THIS_WEEK}"),
    ("Top 3 Hosts by Average CPU.LOAD This Week", f"{AGG}?fn=avg&name=cpu.load&group_by=host&top=3&order=desc&{THIS_WEEK}"),
    ("show me the top 3 hosts by avg cpu.load for this week", f"{AGG}?fn=avg&name=cpu.load&group_by=host&top=3&order=desc&{THIS_WEEK}"),
    ("top 3 hosts by averge cpu.load this week", f"{AGG}?fn=avg&name=cpu.load&group_by=host&top=3&order=desc&{THIS_WEEK}"),
    ("top 3 hosts with the highest mean cpu.load", f"{AGG}?fn=avg&name=cpu.load&group_by=host&top=3&order=desc"),
    ("which 3 hosts have the highest avg cpu.load", f"{AGG}?fn=avg&name=cpu.load&group_by=host&top=3&order=desc"),
    ("which 2 regions have the lowest p95 latency.ms", f"{AGG}?fn=p95&name=latency.ms&group_by=region&top=2&order=asc"),
    ("bottom 2 rooms by max temperature", f"{AGG}?fn=max&name=temperature&group_by=room&top=2&order=asc"),
    ("top 10 hosts by sum of requests last week", f"{AGG}?fn=sum&name=requests&group_by=host&top=10&order=desc&{LAST_WEEK}"),
    ("top hosts by max disk.used", f"{AGG}?fn=max&name=disk.used&group_by=host&top=10&order=desc"),
    ("top 4 processes by p99 latency.ms today", f"{AGG}?fn=p99&name=latency.ms&group_by=process&top=4&order=desc&{TODAY}"),
    ("top 3 hosts by average cpu.load in ascending order", f"{AGG}?fn=avg&name=cpu.load&group_by=host&top=3&order=asc"),
    ("top 2 regions by count of errors", f"{AGG}?fn=count&name=errors&group_by=region&top=2&order=desc"),
    ("top 3 hosts by cpu.load", f"{AGG}?fn=avg&name=cpu.load&group_by=host&top=3&order=desc"),
    ("top 1000 hosts by avg cpu.load", f"{AGG}?fn=avg&name=cpu.load&group_by=host&top=1000&order=desc"),
    ("count by cpu.load", f"{AGG}?fn=count&name=cpu.load"),
    ("count of cpu.load by host", f"{AGG}?fn=count&name=cpu.load&group_by=host"),
    # aggregates
    ("average latency.ms over the last hour", f"{AGG}?fn=avg&name=latency.ms&{LAST_HOUR}"),
    ("avg latency.ms last hour", f"{AGG}?fn=avg&name=latency.ms&{LAST_HOUR}"),
    ("AVERAGE LATENCY.MS OVER THE LAST HOUR", f"{AGG}?fn=avg&name=latency.ms&{LAST_HOUR}"),
    ("what was the mean latency.ms in the past hour?", f"{AGG}?fn=avg&name=latency.ms&{LAST_HOUR}"),
    ("averge latency.ms over the last hour", f"{AGG}?fn=avg&name=latency.ms&{LAST_HOUR}"),
    ("avrage latancy.ms over the lst hour", None),  # `lst` is a short word: not corrected, so refused
    ("average latency over the last hour", f"{AGG}?fn=avg&name=latency.ms&{LAST_HOUR}"),
    ("average latency.ms over the last 60 minutes", f"{AGG}?fn=avg&name=latency.ms&{LAST_HOUR}"),
    ("average latency.ms in the last 1h", f"{AGG}?fn=avg&name=latency.ms&{LAST_HOUR}"),
    ("average latency.ms during the past an hour", f"{AGG}?fn=avg&name=latency.ms&{LAST_HOUR}"),
    ("p95 of http.request.duration yesterday", f"{AGG}?fn=p95&name=http.request.duration&{YESTERDAY}"),
    ("P95 http.request.duration YESTERDAY", f"{AGG}?fn=p95&name=http.request.duration&{YESTERDAY}"),
    ("95th percentile of http.request.duration yesterday", f"{AGG}?fn=p95&name=http.request.duration&{YESTERDAY}"),
    ("the 95 percentile of http request duration yesterday", f"{AGG}?fn=p95&name=http.request.duration&{YESTERDAY}"),
    ("percentile 95 of http.request.duration yesterdy", f"{AGG}?fn=p95&name=http.request.duration&{YESTERDAY}"),
    ("p 95 of http.request.duration for yesterday", f"{AGG}?fn=p95&name=http.request.duration&{YESTERDAY}"),
    ("p99 latency.ms today", f"{AGG}?fn=p99&name=latency.ms&{TODAY}"),
    ("p90 latency.ms today", f"{AGG}?fn=p90&name=latency.ms&{TODAY}"),
    ("p50 latency.ms today", f"{AGG}?fn=p50&name=latency.ms&{TODAY}"),
    ("median latency.ms today", f"{AGG}?fn=p50&name=latency.ms&{TODAY}"),
    ("medain latency.ms today", f"{AGG}?fn=p50&name=latency.ms&{TODAY}"),
    ("max temperature for tag room:kitchen since monday", f"{AGG}?fn=max&name=temperature&tag=room:kitchen&{SINCE_MONDAY}"),
    ("maximum temperature tagged room:kitchen since Monday", f"{AGG}?fn=max&name=temperature&tag=room:kitchen&{SINCE_MONDAY}"),
    ("highest temperature with tag room:kitchen since mon", f"{AGG}?fn=max&name=temperature&tag=room:kitchen&{SINCE_MONDAY}"),
    ("maximun temperature room:kitchen since monday", f"{AGG}?fn=max&name=temperature&tag=room:kitchen&{SINCE_MONDAY}"),
    ("peak temperature for room:kitchen and floor:2 since monday",
     f"{AGG}?fn=max&name=temperature&tag=floor:2&tag=room:kitchen&{SINCE_MONDAY}"),
    ("max temperature for tag room:Kitchen since monday", f"{AGG}?fn=max&name=temperature&tag=room:Kitchen&{SINCE_MONDAY}"),
    ("min temperature since last friday", f"{AGG}?fn=min&name=temperature&{span('11-20T00:00:00', '11-27T15:30:13')}"),
    ("lowest temperature since friday", f"{AGG}?fn=min&name=temperature&{span('11-27T00:00:00', '11-27T15:30:13')}"),
    ("minimum temperature since wednesday", f"{AGG}?fn=min&name=temperature&{span('11-25T00:00:00', '11-27T15:30:13')}"),
    ("how many errors in the last 15 minutes", f"{AGG}?fn=count&name=errors&{LAST_15M}"),
    ("How many ERRORS in the last fifteen minutes?", f"{AGG}?fn=count&name=errors&{LAST_15M}"),
    ("number of errors in the past 15 min", f"{AGG}?fn=count&name=errors&{LAST_15M}"),
    ("count of errors within the last 15m", f"{AGG}?fn=count&name=errors&{LAST_15M}"),
    ("count errors last 15 minuts", f"{AGG}?fn=count&name=errors&{LAST_15M}"),
    ("how many erors in the last 15 minutes", f"{AGG}?fn=count&name=errors&{LAST_15M}"),
    ("total number of errors in the last 15 minutes", f"{AGG}?fn=count&name=errors&{LAST_15M}"),
    ("how many readings today", f"{AGG}?fn=count&{TODAY}"),
    ("how many metrics yesterday", f"{AGG}?fn=count&{YESTERDAY}"),
    ("sum of requests today", f"{AGG}?fn=sum&name=requests&{TODAY}"),
    ("total requests today", f"{AGG}?fn=sum&name=requests&{TODAY}"),
    ("sum requests this month", f"{AGG}?fn=sum&name=requests&{THIS_MONTH}"),
    ("average cpu.load last month", f"{AGG}?fn=avg&name=cpu.load&{LAST_MONTH}"),
    ("average cpu.load previous week", f"{AGG}?fn=avg&name=cpu.load&{LAST_WEEK}"),
    ("average cpu.load in the last 24 hours", f"{AGG}?fn=avg&name=cpu.load&{LAST_24H}"),
    ("average cpu.load over the past day", f"{AGG}?fn=avg&name=cpu.load&{LAST_24H}"),
    ("average cpu.load over the past week", f"{AGG}?fn=avg&name=cpu.load&{LAST_7D}"),
    ("average cpu.load in the last 7 days", f"{AGG}?fn=avg&name=cpu.load&{LAST_7D}"),
    ("avg cpu.load since 2026-11-20", f"{AGG}?fn=avg&name=cpu.load&{span('11-20T00:00:00', '11-27T15:30:13')}"),
    ("avg cpu.load since nov 20", f"{AGG}?fn=avg&name=cpu.load&{span('11-20T00:00:00', '11-27T15:30:13')}"),
    ("avg cpu.load since 20th november", f"{AGG}?fn=avg&name=cpu.load&{span('11-20T00:00:00', '11-27T15:30:13')}"),
    ("avg cpu.load since yesterday", f"{AGG}?fn=avg&name=cpu.load&{span('11-26T00:00:00', '11-27T15:30:13')}"),
    ("avg cpu.load since 3 hours ago", f"{AGG}?fn=avg&name=cpu.load&{span('11-27T12:30:13', '11-27T15:30:13')}"),
    ("avg cpu.load since 2026-11-27T09:00:00Z", f"{AGG}?fn=avg&name=cpu.load&{span('11-27T09:00:00', '11-27T15:30:13')}"),
    ("avg cpu.load between 2026-11-01 and 2026-11-03", f"{AGG}?fn=avg&name=cpu.load&{span('11-01T00:00:00', '11-04T00:00:00')}"),
    ("avg cpu.load between monday and wednesday", f"{AGG}?fn=avg&name=cpu.load&{span('11-23T00:00:00', '11-26T00:00:00')}"),
    ("avg cpu.load from monday to tuesday", f"{AGG}?fn=avg&name=cpu.load&{span('11-23T00:00:00', '11-25T00:00:00')}"),
    ("avg cpu.load between yesterday and now", f"{AGG}?fn=avg&name=cpu.load&{span('11-26T00:00:00', '11-27T15:30:13')}"),
    ("avg cpu.load on 2026-11-25", f"{AGG}?fn=avg&name=cpu.load&{span('11-25T00:00:00', '11-26T00:00:00')}"),
    ("avg cpu.load on tuesday", f"{AGG}?fn=avg&name=cpu.load&{span('11-24T00:00:00', '11-25T00:00:00')}"),
    ("avg cpu.load", f"{AGG}?fn=avg&name=cpu.load"),
    ("cpu.load today", f"{AGG}?fn=avg&name=cpu.load&{TODAY}"),
    ("mean of cpu load today", f"{AGG}?fn=avg&name=cpu.load&{TODAY}"),
    ("average cpu", f"{AGG}?fn=avg&name_prefix=cpu"),
    ("avg cpu.lod today", f"{AGG}?fn=avg&name=cpu.load&{TODAY}"),
    ("avg queue depth today", f"{AGG}?fn=avg&name=queue_depth&{TODAY}"),
    ("average memory used this month", f"{AGG}?fn=avg&name=memory.used&{THIS_MONTH}"),
    ("average cpu.load by host today", f"{AGG}?fn=avg&name=cpu.load&group_by=host&{TODAY}"),
    ("average cpu.load per host today", f"{AGG}?fn=avg&name=cpu.load&group_by=host&{TODAY}"),
    ("average cpu.load grouped by region", f"{AGG}?fn=avg&name=cpu.load&group_by=region"),
    ("count of events by name today", f"{AGG}?fn=count&name_prefix=events&group_by=name&{TODAY}"),
    ("max cpu.load for each host", f"{AGG}?fn=max&name=cpu.load&group_by=host"),
    # series
    ("cpu.load per hour today", f"{AGG}?fn=avg&name=cpu.load&bucket=1h&{TODAY}"),
    ("CPU.LOAD PER HOUR TODAY", f"{AGG}?fn=avg&name=cpu.load&bucket=1h&{TODAY}"),
    ("hourly cpu.load today", f"{AGG}?fn=avg&name=cpu.load&bucket=1h&{TODAY}"),
    ("average cpu.load by hour today", f"{AGG}?fn=avg&name=cpu.load&bucket=1h&{TODAY}"),
    ("max cpu.load every 15 minutes today", f"{AGG}?fn=max&name=cpu.load&bucket=15m&{TODAY}"),
    ("p95 latency.ms in 30 minute buckets yesterday", f"{AGG}?fn=p95&name=latency.ms&bucket=30m&{YESTERDAY}"),
    ("p95 latency.ms in 30-minute buckets yesterday", f"{AGG}?fn=p95&name=latency.ms&bucket=30m&{YESTERDAY}"),
    ("daily average cpu.load this month", f"{AGG}?fn=avg&name=cpu.load&bucket=1d&{THIS_MONTH}"),
    ("average cpu.load per day this month", f"{AGG}?fn=avg&name=cpu.load&bucket=1d&{THIS_MONTH}"),
    ("requests per 5 minutes over the last 2 hours", f"{AGG}?fn=count&name=requests&bucket=5m&{LAST_2H}"),
    ("Requests per 5 minutes over the last two hours", f"{AGG}?fn=count&name=requests&bucket=5m&{LAST_2H}"),
    ("requests every 5 min in the past 2 hours", f"{AGG}?fn=count&name=requests&bucket=5m&{LAST_2H}"),
    ("sum of requests per 5 minutes over the last 2 hours", f"{AGG}?fn=sum&name=requests&bucket=5m&{LAST_2H}"),
    ("errors per minute in the last 15 minutes", f"{AGG}?fn=count&name=errors&bucket=1m&{LAST_15M}"),
    ("count of events per hour by name today", f"{AGG}?fn=count&name_prefix=events&bucket=1h&group_by=name&{TODAY}"),
    ("average cpu.load per 6 hours this week", f"{AGG}?fn=avg&name=cpu.load&bucket=6h&{THIS_WEEK}"),
    # listing
    ("show the latest 10 cpu.load readings", "/metrics?name=cpu.load&limit=10&sort=desc"),
    ("latest 10 cpu.load in region eu", "/metrics?name=cpu.load&tag=region:eu&limit=10&sort=desc"),
    ("max cpu.load for host web-1 today", f"{AGG}?fn=max&name=cpu.load&tag=host:web-1&{TODAY}"),
    ("Show the LATEST 10 cpu.load readings", "/metrics?name=cpu.load&limit=10&sort=desc"),
    ("latest ten cpu.load values", "/metrics?name=cpu.load&limit=10&sort=desc"),
    ("show me the most recent 5 cpu.load readings", "/metrics?name=cpu.load&limit=5&sort=desc"),
    ("lastest 10 cpu.load readings", "/metrics?name=cpu.load&limit=10&sort=desc"),
    ("latest cpu.load readings", "/metrics?name=cpu.load&limit=10&sort=desc"),
    ("first 3 cpu.load readings today", f"/metrics?name=cpu.load&{TODAY}&limit=3&sort=asc"),
    ("oldest 5 errors", "/metrics?name=errors&limit=5&sort=asc"),
    ("last 20 metrics with tag env:prod", "/metrics?tag=env:prod&limit=20&sort=desc"),
    ("last 20 metrics tagged env:prod", "/metrics?tag=env:prod&limit=20&sort=desc"),
    ("Last 20 Metrics With Tag env:prod", "/metrics?tag=env:prod&limit=20&sort=desc"),
    ("latest 20 readings for env:prod and host:web-1", "/metrics?tag=env:prod&tag=host:web-1&limit=20&sort=desc"),
    # comparisons
    ("readings of disk.used above 90 today", f"/metrics?name=disk.used&{TODAY}&value_gt=90&limit=10&sort=desc"),
    ("disk.used readings over 90 today", f"/metrics?name=disk.used&{TODAY}&value_gt=90&limit=10&sort=desc"),
    ("readings of disk.used > 90 today", f"/metrics?name=disk.used&{TODAY}&value_gt=90&limit=10&sort=desc"),
    ("readings of disk.used >90 today", f"/metrics?name=disk.used&{TODAY}&value_gt=90&limit=10&sort=desc"),
    ("readings of disk.used greater than 90 today", f"/metrics?name=disk.used&{TODAY}&value_gt=90&limit=10&sort=desc"),
    ("readings of disk.used at least 90.5 today", f"/metrics?name=disk.used&{TODAY}&value_gte=90.5&limit=10&sort=desc"),
    ("disk.used values below 10", "/metrics?name=disk.used&value_lt=10&limit=10&sort=desc"),
    ("disk.used readings between... above 10 and below 20", None),
    ("disk.used readings above 10 and below 20", "/metrics?name=disk.used&value_gt=10&value_lt=20&limit=10&sort=desc"),
    ("latest 50 disk.used readings above 90", "/metrics?name=disk.used&value_gt=90&limit=50&sort=desc"),
    ("how many disk.used readings above 90 today", f"{AGG}?fn=count&name=disk.used&{TODAY}&value_gt=90"),
    ("average disk.used above 90 this week", f"{AGG}?fn=avg&name=disk.used&{THIS_WEEK}&value_gt=90"),
]  # fmt: skip

REJECTED = [
    "",
    "   ",
    "hello",
    "colourless green ideas sleep furiously",
    "p75 of cpu.load",
    "p95 of banana",
    "avg cpu.load hello world",
    "average cpu.load and max cpu.load",
    "top 3 hosts per hour by avg cpu.load",
    "top 0 hosts by avg cpu.load",
    "top 999999 hosts by avg cpu.load",
    "top 3 hosts by region",
    "avg cpu.load since 2027-01-01",
    "avg cpu.load after 2026-12-20",
    "cpu.load per 7 minutes",
    "cpu.load per 2 weeks",
    "avg cpu.load since february 30",
    "avg cpu.load between 2026-11-05 and 2026-11-01",
    "avg cpu.load since",
    "avg cpu.load in the last 0 hours",
    "latest 10 events",
    "latest average cpu.load",
    "cpu.load per minute this year",
    "x" * 501,
]


def params_of(url: str) -> tuple[str, list[tuple[str, str]]]:
    parts = urlsplit(url)
    return parts.path, sorted(parse_qsl(parts.query))


@pytest.mark.parametrize(("prompt", "expected"), [c for c in CORPUS if c[1] is not None])
def test_prompt_means(prompt: str, expected: str) -> None:
    assert params_of(equivalent(parse_prompt(prompt, CONTEXT))) == params_of(expected)


@pytest.mark.parametrize("prompt", REJECTED + [c[0] for c in CORPUS if c[1] is None])
def test_prompt_is_refused_with_the_part_and_examples(prompt: str) -> None:
    with pytest.raises(PromptNotUnderstood) as refused:
        parse_prompt(prompt, CONTEXT)
    assert refused.value.status == 422
    assert refused.value.part
    assert "average latency.ms over the last hour" in refused.value.extra()["examples"]


def test_the_corpus_is_large_enough() -> None:
    assert len(CORPUS) + len(REJECTED) >= 120


def test_the_interpretation_shows_matches_corrections_and_defaults() -> None:
    parsed = parse_prompt("averge cpu.lod per hour yesterdy", CONTEXT)
    shown = interpretation(parsed, "UTC")
    assert shown["name"] == {"text": "cpu.lod", "match": "closest", "name": "cpu.load", "distance": 1}
    assert shown["corrections"] == [
        {"typed": "averge", "read_as": "average"},
        {"typed": "yesterdy", "read_as": "yesterday"},
    ]
    assert shown["time"]["phrase"] == "yesterday"
    assert interpretation(parse_prompt("cpu.load per hour", CONTEXT), "UTC")["defaults"] == ["fn=avg"]
    prefix = interpretation(parse_prompt("average cpu", CONTEXT), "UTC")["name"]
    assert prefix == {"text": "cpu", "match": "prefix", "name_prefix": "cpu", "names_matched": 2}


TOKYO_TODAY = [("from", "2026-11-27T15:00:00.000Z"), ("to", "2026-11-28T15:00:00.000Z")]


def test_time_words_follow_the_zone() -> None:
    tokyo = PromptContext(NOW, "Asia/Tokyo", NAMES)  # 00:30 on Saturday the 28th in Tokyo
    parsed = parse_prompt("count errors today", tokyo)
    assert params_of(equivalent(parsed))[1] == sorted(
        [("fn", "count"), ("name", "errors"), ("tz", "Asia/Tokyo"), *TOKYO_TODAY]
    )


def test_parsing_is_deterministic() -> None:
    for prompt, _ in CORPUS[:20]:
        assert parse_prompt(prompt, CONTEXT) == parse_prompt(prompt, CONTEXT)
        assert parse_prompt(prompt, PromptContext(NOW, "UTC", tuple(reversed(NAMES)))) == parse_prompt(prompt, CONTEXT)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=200))
def test_any_text_is_a_query_or_a_422(prompt: str) -> None:
    with contextlib.suppress(PromptNotUnderstood):
        parse_prompt(prompt, CONTEXT)


GRAMMAR_WORDS = (
    "top 5 hosts by average max p95 p75 cpu.load errors per hour 5 minutes today yesterday since monday between "
    "and last past 15 above below 90 tag env:prod room: readings latest show of the in over 2026-11-30 ago"
    " week month -3 0 99999999 : > < = events names"
)
WORDS = st.sampled_from(GRAMMAR_WORDS.split(" "))


@settings(max_examples=400, deadline=None)
@given(st.lists(WORDS, max_size=12).map(" ".join))
def test_any_mix_of_grammar_words_is_a_query_or_a_422(prompt: str) -> None:
    with contextlib.suppress(PromptNotUnderstood):
        parse_prompt(prompt, CONTEXT)


@pytest.mark.parametrize(
    ("prompt", "part"),
    [
        ("count errors since february 30", "february 30"),
        ("count errors between 2026-11-05 and 2026-11-01", "between 2026-11-05 and 2026-11-01"),
    ],
)
def test_an_impossible_time_phrase_is_refused_naming_the_phrase(prompt: str, part: str) -> None:
    with pytest.raises(PromptNotUnderstood) as refused:
        parse_prompt(prompt, CONTEXT)
    assert refused.value.part == part
