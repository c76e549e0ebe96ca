"""The `GET /metrics` query: filters, order and cursor parsed from query parameters, with a normal form."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

import orjson

from telemetry_server.errors import FieldError, ValidationFailed
from telemetry_server.models.metric import MAX_TAGS, Fail, check_name, check_tags
from telemetry_server.models.point_id import is_point_id
from telemetry_server.models.timestamps import EARLIEST, format_timestamp, from_millis, parse_timestamp_text, to_millis
from telemetry_server.models.value_range import VALUE_PARAMS, ValueRange, parse_value_range

_PARAMS = frozenset({"name", "tag", "from", "to", "limit", "sort", "cursor", "filters", *VALUE_PARAMS})
_FILTER_KEYS = frozenset({"name", "tags", "from", "to"})


class SortOrder(StrEnum):
    """`sort` of a listing (by time: desc is newest first) and `order` of an aggregate (by value)."""

    DESC = "desc"
    ASC = "asc"


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the previous page ended: keyset paging on (timestamp, id)."""

    timestamp: datetime
    id: str

    def encode(self) -> str:
        millis = to_millis(self.timestamp)  # integers: a float epoch can lose a millisecond
        raw = f"{millis}:{self.id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            millis, id_ = raw.split(":", 1)
            moment = from_millis(int(millis))
            if moment < EARLIEST:
                raise ValueError(millis)
        except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError):
            raise ValidationFailed([FieldError("cursor", "is not a cursor this server issued")]) from None
        if not is_point_id(id_):
            raise ValidationFailed([FieldError("cursor", "is not a cursor this server issued")])
        return cls(moment, id_)


@dataclass(frozen=True, slots=True)
class MetricQuery:
    name: str | None = None
    tags: tuple[str, ...] = ()
    start: datetime | None = None
    end: datetime | None = None
    limit: int = 100
    order: SortOrder = SortOrder.DESC
    cursor: Cursor | None = None
    values: ValueRange = field(default_factory=ValueRange)

    @property
    def may_scan(self) -> bool:
        """Filters on tags, time or value: the engine may read many metrics to fill one page."""
        return bool(self.tags) or self.start is not None or self.end is not None or self.values.bounded

    def cache_key(self) -> str:
        """The same key for every spelling of the same query (tag order, timestamp format, defaults)."""
        # JSON, not a joined string: a tag may itself hold the separator (["a,b"] is not ["a", "b"]).
        parts = [
            self.name or "",
            self.tags,
            format_timestamp(self.start) if self.start else "",
            format_timestamp(self.end) if self.end else "",
            str(self.limit),
            self.order.value,
            self.cursor.encode() if self.cursor else "",
        ]
        if self.values.bounded:
            parts.append("&".join(f"{key}={bound}" for key, bound in self.values.to_params()))
        return orjson.dumps(parts).decode()

    def to_params(self) -> list[tuple[str, str]]:
        """The query as `GET /metrics` parameters (the `equivalent` of a listing prompt)."""
        params = [("name", self.name)] if self.name is not None else []
        params += [("tag", tag) for tag in self.tags]
        if self.start is not None:
            params.append(("from", format_timestamp(self.start)))
        if self.end is not None:
            params.append(("to", format_timestamp(self.end)))
        params += self.values.to_params()
        params += [("limit", str(self.limit)), ("sort", self.order.value)]
        if self.cursor is not None:
            params.append(("cursor", self.cursor.encode()))
        return params


def collect_params(
    params: Sequence[tuple[str, str]], allowed: frozenset[str], fail: Fail
) -> tuple[dict[str, str], list[str]]:
    """Allow-listed query parameters: each once, but `tag`, which may repeat."""
    single: dict[str, str] = {}
    tags: list[str] = []
    for key, value in params:
        if key not in allowed:
            fail(key[:64], f"is not a known parameter (allowed: {', '.join(sorted(allowed))})")
        elif key == "tag":
            tags.append(value)
        elif key in single:
            fail(key, "may be given only once")
        else:
            single[key] = value
    return single, tags


def parse_metric_query(params: Sequence[tuple[str, str]], default_limit: int, max_limit: int) -> MetricQuery:
    """Read `name`, `tag` (repeatable), `from`, `to`, `value_*`, `limit`, `sort`, `cursor` and JSON `filters`."""
    errors: list[FieldError] = []

    def fail(field: str, message: str) -> None:
        errors.append(FieldError(field, message))

    single, tags = collect_params(params, _PARAMS, fail)
    if "filters" in single:
        _merge_filters(single, tags, single.pop("filters"), fail)

    name = check_name(single["name"], fail) if "name" in single else None
    checked_tags = tuple(sorted(set(check_tags(tags, fail)))) if tags else ()
    start = parse_time_param(single, "from", fail)
    end = parse_time_param(single, "to", fail)
    if start and end and start >= end:
        fail("from", "must be earlier than `to`")
    limit = _limit_param(single.get("limit"), default_limit, max_limit, fail)
    order = SortOrder.DESC
    if "sort" in single:
        try:
            order = SortOrder(single["sort"])
        except ValueError:
            fail("sort", "must be desc (newest first) or asc (oldest first)")
    cursor = None
    if "cursor" in single:
        try:
            cursor = Cursor.decode(single["cursor"])
        except ValidationFailed as exc:
            errors.extend(exc.errors)
    values = parse_value_range(single, fail)
    if errors:
        raise ValidationFailed(errors)
    return MetricQuery(name, checked_tags, start, end, limit, order, cursor, values)


def _merge_filters(single: dict[str, str], tags: list[str], raw: str, fail: Fail) -> None:
    """`filters` is a JSON object: {"name": "...", "tags": ["..."], "from": "...", "to": "..."}."""
    try:
        filters = orjson.loads(raw)
    except orjson.JSONDecodeError:
        fail("filters", 'must be a JSON object such as {"name": "cpu.load", "tags": ["host:web-1"]}')
        return
    if not isinstance(filters, dict):
        fail("filters", "must be a JSON object")
        return
    for key, value in filters.items():
        if key not in _FILTER_KEYS:
            fail(f"filters.{key}"[:72], f"is not a known filter (allowed: {', '.join(sorted(_FILTER_KEYS))})")
        elif key == "tags":
            if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
                fail("filters.tags", "must be a list of strings")
            elif len(value) > MAX_TAGS:
                fail("filters.tags", f"must hold at most {MAX_TAGS} tags")
            else:
                tags.extend(value)
        elif key in single:
            fail(f"filters.{key}", f"is also given as the `{key}` parameter")
        elif isinstance(value, str) or (key != "name" and isinstance(value, int | float)):
            single[key] = str(value)
        else:
            fail(f"filters.{key}", "must be a string" if key == "name" else "must be a string or a number")


def parse_time_param(single: dict[str, str], key: str, fail: Fail) -> datetime | None:
    if key not in single:
        return None
    raw = single[key]
    try:
        return parse_timestamp_text(raw)
    except ValueError as exc:
        fail(key, str(exc))
        return None


def _limit_param(raw: str | None, default: int, maximum: int, fail: Fail) -> int:
    if raw is None:
        return default
    # "²".isdigit() is True but int() refuses it, as it refuses more than 4300 digits.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 12) or not 1 <= int(raw) <= maximum:
        fail("limit", f"must be a whole number from 1 to {maximum}")
        return default
    return int(raw)
