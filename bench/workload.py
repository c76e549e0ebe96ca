"""The points, bodies and paths every scenario uses, generated once so that our server and peers get the same."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import orjson

SERVICES = [f"svc{n:02d}" for n in range(40)]
SIGNALS = ["cpu", "mem", "disk", "net", "latency"]
NAMES = [f"{service}.{signal}" for service in SERVICES for signal in SIGNALS]  # 200 series names
REGIONS = ["eu", "us", "ap"]
HOSTS = [f"h{n:02d}" for n in range(8)]
# The names a dashboard reads most: readers are concentrated, writers spread over every name.
HOT_NAMES = NAMES[:: len(NAMES) // 16][:16]
PAGE = 50
RECORD_SEPARATOR = "\n%%\n"


@dataclass(frozen=True, slots=True)
class Point:
    name: str
    host: str
    region: str
    value: float
    timestamp: datetime | None  # None: the server stamps it

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"name": self.name, "tags": [f"host:{self.host}", f"region:{self.region}"]}
        body["value"] = self.value
        if self.timestamp is not None:
            body["timestamp"] = self.timestamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return body

    def to_line(self) -> str:
        """The same point in InfluxDB line protocol (tags host and region, field value, ns timestamp)."""
        line = f"{self.name},host={self.host},region={self.region} value={self.value!r}"
        if self.timestamp is not None:
            line += f" {int(self.timestamp.timestamp() * 1000) * 1_000_000}"
        return line


def points(count: int, end: datetime, step: timedelta, seed: int, stamped: bool = True) -> list[Point]:
    """`count` points round-robin over every name, one `step` apart, the last at `end`."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        name = NAMES[i % len(NAMES)]
        round_ = i // len(NAMES)
        stamp = end - step * (count - 1 - i) if stamped else None
        out.append(
            Point(name, HOSTS[round_ % len(HOSTS)], REGIONS[round_ % len(REGIONS)], round(rng.random() * 100, 3), stamp)
        )
    return out


def series_points(count: int, per_series: int, end: datetime, seed: int) -> list[Point]:
    """`count` points in runs of `per_series` consecutive seconds of one series (an agent flushing its buffer of
    one signal), the series taken in turn over names, hosts and regions; the last run ends at `end`."""
    rng = random.Random(seed)
    runs = -(-count // per_series)
    out = []
    for run in range(runs):
        name, host, region = NAMES[run % len(NAMES)], HOSTS[run % len(HOSTS)], REGIONS[run % len(REGIONS)]
        start = end - timedelta(seconds=per_series * (runs - run))
        for i in range(min(per_series, count - run * per_series)):
            out.append(Point(name, host, region, round(rng.random() * 100, 3), start + timedelta(seconds=i)))
    return out


def json_batches(items: Sequence[Point], size: int) -> list[bytes]:
    return [orjson.dumps([p.to_json() for p in items[i : i + size]]) for i in range(0, len(items), size)]


def line_batches(items: Sequence[Point], size: int) -> list[bytes]:
    return ["\n".join(p.to_line() for p in items[i : i + size]).encode() for i in range(0, len(items), size)]


def write_records(path: Path, records: Iterable[str | bytes]) -> Path:
    """One record per request, separated by a line holding only `%%` (see wrk/common.lua)."""
    with path.open("wb") as out:
        for record in records:
            out.write(record if isinstance(record, bytes) else record.encode())
            out.write(RECORD_SEPARATOR.encode())
    return path


def cached_paths() -> list[str]:
    """A dashboard's queries: hot names, filtered by region, newest page first."""
    return [
        f"/metrics?{urlencode({'name': n, 'tag': f'region:{r}', 'limit': PAGE})}"
        for n in HOT_NAMES
        for r in REGIONS[:2]
    ]


def uncached_paths(count: int, now: datetime) -> list[str]:
    """The same query shape, each with its own `from` (one ms apart): a distinct cache key, so every one misses."""
    paths = []
    for i in range(count):
        start = (now - timedelta(days=1) - timedelta(milliseconds=i)).isoformat(timespec="milliseconds")
        query = {"name": HOT_NAMES[i % len(HOT_NAMES)], "tag": "region:eu", "from": start.replace("+00:00", "Z")}
        paths.append(f"/metrics?{urlencode({**query, 'limit': PAGE})}")
    return paths


def top_events_probe() -> str:
    return f"/metrics/aggregate?{urlencode({'fn': 'count', 'group_by': 'name', 'top': 5, 'range': '1d'})}"


def top_events_paths(count: int, first_point: datetime, now: datetime) -> list[str]:
    """ "What are the top 5 events today" as /query asks it (docs/query.md: count by name, top 5, the day), each with
    its own `from`, one ms apart, so every one is a cache miss. The window starts at midnight, or earlier when the
    seed began yesterday, so that it holds every seeded point."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    since, until = min(midnight, first_point), midnight + timedelta(days=1)
    paths = []
    for i in range(count):
        query = {"fn": "count", "group_by": "name", "top": 5, "order": "desc"}
        query |= {"from": _rfc3339(since - timedelta(milliseconds=i)), "to": _rfc3339(until)}
        paths.append(f"/metrics/aggregate?{urlencode(query)}")
    return paths


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def influx_query_paths(database: str) -> list[str]:
    """InfluxQL for the cached_paths() question: the newest page of a measurement with a tag."""
    paths = []
    for name in HOT_NAMES:
        for region in REGIONS[:2]:
            q = f'SELECT "value" FROM "{name}" WHERE "region" = \'{region}\' ORDER BY time DESC LIMIT {PAGE}'
            paths.append(f"/query?db={database}&q={quote(q)}")
    return paths


def prompt_paths() -> list[str]:
    prompts = ["what are the top 5 events today"]
    for name in HOT_NAMES[:8]:
        prompts += [f"average {name} in the last hour", f"latest 10 {name} in region eu", f"max {name} today"]
    return [f"/query?{urlencode({'prompt': p})}" for p in prompts]


def aggregate_candidates() -> list[str]:
    """Spellings tried in turn for GET /metrics/aggregate (its parameters are not settled yet)."""
    name = HOT_NAMES[0]
    return [
        f"/metrics/aggregate?{urlencode(q)}"
        for q in (
            {"name": name, "fn": "avg", "bucket": "1m"},
            {"name": name, "fn": "avg"},
            {"name": name, "op": "avg", "bucket": "1m"},
            {"name": name, "agg": "avg"},
            {"name": name},
        )
    ]


def aggregate_paths(template: str) -> list[str]:
    first = quote(HOT_NAMES[0], safe="")
    return [template.replace(f"name={first}", f"name={quote(name, safe='')}") for name in HOT_NAMES]


def put_bodies(count: int, now: datetime) -> list[bytes]:
    rng = random.Random(7)
    out = []
    for i in range(count):
        stamp = now - timedelta(seconds=i)
        point = Point(NAMES[i % len(NAMES)], HOSTS[i % len(HOSTS)], "eu", round(rng.random() * 100, 3), stamp)
        out.append(orjson.dumps(point.to_json()))
    return out


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)
