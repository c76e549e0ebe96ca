"""GET /query?prompt=: the kinds of question the prompt grammar covers (top-k, averages, percentiles, counts,
listings, series, comparisons, near names), asked of a seeded data set and checked against values computed here.

Names carry a random letters-only prefix so runs sharing a database never see each other's data.
"""

from __future__ import annotations

import math
import random
import string
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest


@dataclass
class Seeded:
    prefix: str
    now: datetime
    points: list[dict[str, Any]] = field(default_factory=list)

    def add(self, name: str, value: float, at: datetime, tags: list[str] | None = None) -> None:
        self.points.append({"name": self.prefix + name, "value": value, "timestamp": at, "tags": tags or []})

    def select(self, name: str, start: datetime, end: datetime, tag: str | None = None) -> list[dict[str, Any]]:
        return [
            p
            for p in self.points
            if p["name"] == self.prefix + name and start <= p["timestamp"] < end and (tag is None or tag in p["tags"])
        ]


def day_start(day: date, zone: ZoneInfo | None = None) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone or UTC).astimezone(UTC)


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def nearest_rank(values: list[float], percentile: int) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(percentile / 100 * len(ordered))) - 1]


@pytest.fixture(scope="module")
def seeded(base_url: str) -> Seeded:
    prefix = "".join(random.choices(string.ascii_lowercase, k=10))
    now = datetime.now(UTC).replace(microsecond=0)
    data = Seeded(prefix, now)
    for i in range(48):
        tags = [f"host:h{i % 4}"] + ([f"env:{prefix}prod"] if i % 3 == 0 else [])
        data.add("cpu.load", float(i * 7 % 50 + 1), now - timedelta(minutes=25 * i, seconds=30), tags)
    for i in range(30):
        data.add("latency.ms", float(i * 13 % 40), now - timedelta(minutes=3 * i, seconds=90))
    yesterday = day_start(now.date() - timedelta(days=1))
    for i in range(40):
        data.add("http.request.duration", float(i * 11 % 97), yesterday + timedelta(minutes=30 + 30 * i))
    for i in range(20):
        room = "room:kitchen" if i % 2 == 0 else "room:hall"
        data.add("temperature", 18.0 + i % 7, now - timedelta(hours=2 * i, minutes=1), [room])
    for i in range(10):
        data.add("errors", 1.0, now - timedelta(minutes=2 * i, seconds=30))
    for i in range(40):
        data.add("requests", 1.0, now - timedelta(minutes=4 * i + 1))
    for i in range(30):
        data.add("disk.used", 80.0 + i % 20, now - timedelta(minutes=20 * i, seconds=20), [f"env:{prefix}prod"])
    for event, count in (("login", 12), ("signup", 7), ("view", 19), ("click", 3), ("logout", 5), ("error", 1)):
        for i in range(count):
            data.add(f"events.{event}", 1.0, now - timedelta(minutes=i, seconds=10))
    body = [{**p, "timestamp": p["timestamp"].isoformat()} for p in data.points]
    with httpx.Client(base_url=base_url, timeout=60) as http:
        assert http.post("/metrics", json=body).status_code == 201
    return data  # left in place: the random prefix keeps it out of every other test's way


def ask(client: httpx.Client, prompt: str, **params: str) -> dict[str, Any]:
    response = client.get("/query", params={"prompt": prompt, **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"prompt", "interpretation", "equivalent", "results", "took_ms", "cached", "stats"}
    return body


def window(body: dict[str, Any]) -> tuple[datetime, datetime]:
    query = body["interpretation"]["query"]
    return parse(query["from"]), parse(query["to"])


def this_monday(now: datetime) -> date:
    return now.date() - timedelta(days=now.weekday())


def test_top_events_today(client: httpx.Client, seeded: Seeded) -> None:
    body = ask(client, f"what are the top 5 {seeded.prefix}events today")
    today = day_start(seeded.now.date())
    assert window(body) == (today, today + timedelta(days=1))
    counts = Counter(p["name"] for p in seeded.points if "events." in p["name"] and p["timestamp"] >= today)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:5]
    assert [(r["group"], r["value"]) for r in body["results"]] == ranked
    assert body["equivalent"].startswith("/metrics/aggregate?fn=count&name_prefix=")


def test_top_hosts_by_average_this_week(client: httpx.Client, seeded: Seeded) -> None:
    body = ask(client, f"top 3 hosts by average {seeded.prefix}cpu.load this week")
    monday = day_start(this_monday(seeded.now))
    assert window(body) == (monday, monday + timedelta(days=7))
    groups: dict[str, list[float]] = defaultdict(list)
    for p in seeded.select("cpu.load", monday, monday + timedelta(days=7)):
        groups[p["tags"][0].removeprefix("host:")].append(p["value"])
    ranked = sorted(((sum(v) / len(v), g) for g, v in groups.items()), key=lambda r: (-r[0], r[1]))[:3]
    assert [(r["group"], pytest.approx(r["value"])) for r in body["results"]] == [(g, v) for v, g in ranked]


def test_average_over_the_last_hour(client: httpx.Client, seeded: Seeded) -> None:
    body = ask(client, f"average {seeded.prefix}latency.ms over the last hour")
    start, end = window(body)
    assert end - start == timedelta(hours=1)
    assert abs((end - datetime.now(UTC)).total_seconds()) < 5
    values = [p["value"] for p in seeded.select("latency.ms", start, end)]
    assert body["results"] == [{"value": pytest.approx(sum(values) / len(values)), "count": len(values)}]


def test_p95_yesterday(client: httpx.Client, seeded: Seeded) -> None:
    body = ask(client, f"p95 of {seeded.prefix}http.request.duration yesterday")
    today = day_start(seeded.now.date())
    assert window(body) == (today - timedelta(days=1), today)
    values = [p["value"] for p in seeded.select("http.request.duration", today - timedelta(days=1), today)]
    assert body["results"] == [{"value": nearest_rank(values, 95), "count": len(values)}]


def test_max_for_a_tag_since_monday(client: httpx.Client, seeded: Seeded) -> None:
    body = ask(client, f"max {seeded.prefix}temperature for tag room:kitchen since monday")
    start, end = window(body)
    assert start == day_start(this_monday(seeded.now))
    values = [p["value"] for p in seeded.select("temperature", start, end, "room:kitchen")]
    expected = {"value": max(values), "count": len(values)} if values else {"value": None, "count": 0}
    assert body["results"] == [expected]


def test_how_many_in_the_last_15_minutes(client: httpx.Client, seeded: Seeded) -> None:
    body = ask(client, f"how many {seeded.prefix}errors in the last 15 minutes")
    start, end = window(body)
    assert end - start == timedelta(minutes=15)
    assert body["results"] == [{"value": 8, "count": 8}]


def test_latest_readings(client: httpx.Client, seeded: Seeded) -> None:
    body = ask(client, f"show the latest 10 {seeded.prefix}cpu.load readings")
    newest = sorted(seeded.select("cpu.load", seeded.now - timedelta(days=9), seeded.now), key=lambda p: p["timestamp"])
    assert [m["value"] for m in body["results"]] == [p["value"] for p in reversed(newest[-10:])]
    assert body["equivalent"] == f"/metrics?name={seeded.prefix}cpu.load&limit=10&sort=desc"
    assert body["interpretation"]["kind"] == "listing"


def test_last_metrics_with_a_tag(client: httpx.Client, seeded: Seeded) -> None:
    body = ask(client, f"last 20 metrics with tag env:{seeded.prefix}prod")
    tagged = sorted((p for p in seeded.points if f"env:{seeded.prefix}prod" in p["tags"]), key=lambda p: p["timestamp"])
    assert [(m["name"], m["value"]) for m in body["results"]] == [
        (p["name"], p["value"]) for p in reversed(tagged[-20:])
    ]


@pytest.mark.parametrize("tz", ["UTC", "Asia/Tokyo"])
def test_series_per_hour_today(client: httpx.Client, seeded: Seeded, tz: str) -> None:
    body = ask(client, f"{seeded.prefix}cpu.load per hour today", tz=tz)
    zone = ZoneInfo(tz)
    today = datetime.now(zone).date()
    assert window(body) == (day_start(today, zone), day_start(today + timedelta(days=1), zone))
    buckets: dict[datetime, list[float]] = defaultdict(list)
    for p in seeded.select("cpu.load", *window(body)):
        buckets[p["timestamp"].replace(minute=0, second=0)].append(p["value"])  # whole-hour zones only
    assert [(parse(r["bucket"]), r["value"], r["count"]) for r in body["results"]] == [
        (b, pytest.approx(sum(v) / len(v)), len(v)) for b, v in sorted(buckets.items())
    ]
    assert body["interpretation"]["defaults"] == ["fn=avg"]


def test_counts_per_five_minutes(client: httpx.Client, seeded: Seeded) -> None:
    body = ask(client, f"{seeded.prefix}requests per 5 minutes over the last 2 hours")
    counts: Counter[datetime] = Counter()
    for p in seeded.select("requests", *window(body)):
        counts[p["timestamp"].replace(minute=p["timestamp"].minute // 5 * 5, second=0)] += 1
    assert [(parse(r["bucket"]), r["value"]) for r in body["results"]] == sorted(counts.items())


def test_readings_above_a_value_today(client: httpx.Client, seeded: Seeded) -> None:
    body = ask(client, f"readings of {seeded.prefix}disk.used above 90 today")
    start, end = window(body)
    high = sorted((p for p in seeded.select("disk.used", start, end) if p["value"] > 90), key=lambda p: p["timestamp"])
    assert [m["value"] for m in body["results"]] == [p["value"] for p in reversed(high[-10:])]
    assert "value_gt=90" in body["equivalent"]


def test_typos_and_near_names_are_read_and_shown(client: httpx.Client, seeded: Seeded) -> None:
    body = ask(client, f"AVERGE {seeded.prefix}LATNCY.ms yesterdy")
    interpretation = body["interpretation"]
    assert interpretation["name"] == {
        "text": f"{seeded.prefix}latncy.ms",
        "match": "closest",
        "name": f"{seeded.prefix}latency.ms",
        "distance": 1,
    }
    assert {"typed": "averge", "read_as": "average"} in interpretation["corrections"]
    assert interpretation["query"]["fn"] == "avg"


def test_a_prompt_answers_from_the_cache_the_second_time(client: httpx.Client, seeded: Seeded) -> None:
    prompt = f"p95 of {seeded.prefix}http.request.duration yesterday"
    ask(client, prompt)
    assert ask(client, prompt)["cached"] is True


@pytest.mark.parametrize(
    "prompt",
    ["colourless green ideas sleep furiously", "p75 of cpu.load", "", "top 3 hosts per hour", "since februar 30"],
)
def test_a_prompt_not_understood_is_422_with_examples(client: httpx.Client, prompt: str) -> None:
    response = client.get("/query", params={"prompt": prompt})
    assert response.status_code == 422
    body = response.json()
    assert body["type"] == "/problems/prompt_not_understood"
    assert body["not_understood"]
    assert "average latency.ms over the last hour" in body["examples"]


def test_query_parameters_are_checked(client: httpx.Client) -> None:
    assert client.get("/query").status_code == 422
    assert client.get("/query", params={"prompt": "count today", "tz": "Nowhere/Land"}).status_code == 422
