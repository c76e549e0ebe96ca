"""The Metric: validation of what clients send and the JSON shape of what they get back."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from telemetry_server.errors import FieldError, FieldErrors, ValidationFailed
from telemetry_server.models.timestamps import format_timestamp, parse_timestamp, truncate_to_millis

MAX_NAME_LENGTH = 200
MAX_TAGS = 64
MAX_TAG_LENGTH = 200
# Names are what prompts and filters match on, so they stay a plain, printable vocabulary.
NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-:/")
Fail = Callable[[str, str], None]
_FIELDS = frozenset({"name", "tags", "value", "timestamp"})


@dataclass(frozen=True, slots=True)
class MetricInput:
    """A validated metric as a client sent it, before it has an id."""

    name: str
    tags: tuple[str, ...]
    value: float
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class Metric:
    id: str
    name: str
    tags: tuple[str, ...]
    value: float
    timestamp: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "tags": list(self.tags),
            "value": self.value,
            "timestamp": format_timestamp(self.timestamp),
        }


def parse_metric(data: object, now: datetime, *, index: int | None = None, id_: str | None = None) -> MetricInput:
    """Validate one metric object; every problem found is reported, not just the first.

    `id_` is the id from the URL on a replace: the body may repeat it, but not contradict it.
    """
    errors = FieldErrors()
    metric = read_metric(data, truncate_to_millis(now), errors, index=index, id_=id_)
    if metric is None:
        raise errors.refusal()
    return metric


def parse_metric_batch(data: list[object], now: datetime, max_size: int) -> list[MetricInput]:
    """All or nothing: one bad item refuses the batch, with the index and reason of every bad item (the first
    MAX_LISTED_ERRORS listed, the rest counted)."""
    if not data:
        raise ValidationFailed([FieldError("$", "a batch must hold at least one metric")])
    if len(data) > max_size:
        raise ValidationFailed([FieldError("$", f"a batch holds at most {max_size} metrics, got {len(data)}")])
    parsed: list[MetricInput] = []
    errors = FieldErrors()
    bad = 0
    now = truncate_to_millis(now)
    for index, item in enumerate(data):
        metric = read_metric(item, now, errors, index=index)
        if metric is None:
            bad += 1
        else:
            parsed.append(metric)
    if bad:
        raise errors.refusal(f"{bad} of {len(data)} metrics are invalid; none was stored")
    return parsed


def read_metric(
    data: object, now: datetime, errors: FieldErrors, *, index: int | None = None, id_: str | None = None
) -> MetricInput | None:
    """The metric, or None when `data` is not one: each problem is added to `errors`. `now`, the timestamp of a
    metric sent without one, is truncated to the millisecond by the caller (once per batch)."""
    found = errors.count

    def fail(field: str, message: str) -> None:
        errors.add(field, message, index)

    # PERF: JSON objects are dicts; the Mapping check (an ABC's) was 4% of a batch POST's worker time.
    if type(data) is not dict and not isinstance(data, Mapping):
        fail("$", "must be a JSON object")
        return None
    for key in data:
        if key == "id" and id_ is not None:
            if data[key] != id_:
                fail("id", "does not match the id in the URL")
        elif key not in _FIELDS:
            fail(str(key)[:64], "is not a known field (allowed: name, tags, value, timestamp)")

    name = check_name(data.get("name"), fail)
    tags = check_tags(data.get("tags"), fail)
    value = _check_value(data.get("value", _MISSING), fail)
    timestamp = now
    if data.get("timestamp") is not None:
        try:
            timestamp = parse_timestamp(data["timestamp"])
        except ValueError as exc:
            fail("timestamp", str(exc))
    if errors.count > found:
        return None
    return MetricInput(name, tags, value, timestamp)


class _Missing:
    pass


_MISSING = _Missing()


def check_name(name: object, fail: Fail) -> str:
    if name is None:
        fail("name", "is required")
    elif not isinstance(name, str):
        fail("name", "must be a string")
    elif not name:
        fail("name", "must not be empty")
    elif len(name) > MAX_NAME_LENGTH:
        fail("name", f"must be at most {MAX_NAME_LENGTH} characters")
    elif not NAME_CHARS.issuperset(name):
        fail("name", "may hold only letters, digits and _ . - : /")
    else:
        return name
    return ""


def check_tags(tags: object, fail: Fail) -> tuple[str, ...]:
    if tags is None:
        return ()
    if not isinstance(tags, list):
        fail("tags", "must be a list of strings")
        return ()
    if len(tags) > MAX_TAGS:
        fail("tags", f"must hold at most {MAX_TAGS} tags")
        return ()
    for position, tag in enumerate(tags):
        if not isinstance(tag, str):
            fail(f"tags[{position}]", "must be a string")
        elif not tag or len(tag) > MAX_TAG_LENGTH:
            fail(f"tags[{position}]", f"must be 1 to {MAX_TAG_LENGTH} characters")
        elif not tag.isprintable():
            fail(f"tags[{position}]", "must not hold control characters")
        elif tag.startswith("$"):
            fail(f"tags[{position}]", "must not start with '$'")
    strings = [tag for tag in tags if isinstance(tag, str)]  # a list or object among them is not hashable
    if len(set(strings)) != len(strings):
        fail("tags", "must not repeat a tag")
    return tuple(tags)


def _check_value(value: object, fail: Fail) -> float:
    if value is _MISSING or value is None:
        fail("value", "is required")
    elif isinstance(value, bool) or not isinstance(value, int | float):
        fail("value", "must be a number")
    else:
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if math.isfinite(number):
            return number
        fail("value", "must be a finite number")
    return 0.0
