"""The aggregation query: one model for `GET /metrics/aggregate` and for prompts, with its normal form."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from telemetry_server.errors import FieldError, ValidationFailed
from telemetry_server.models.metric import Fail, check_name, check_tags
from telemetry_server.models.metric_query import SortOrder, collect_params, parse_time_param
from telemetry_server.models.time_range import UNIT_SECONDS, load_zone, parse_duration, window_end
from telemetry_server.models.timestamps import EARLIEST, format_timestamp
from telemetry_server.models.value_range import VALUE_PARAMS, ValueRange, parse_value_range

AGGREGATE_PATH = "/metrics/aggregate"
MAX_TOP = 1000
MAX_BUCKETS = 10_000
_PARAMS = frozenset({"fn", "name", "name_prefix", "tag", "from", "to", "range", "bucket", "group_by", "top"})
_PARAMS |= frozenset({"order", "tz", *VALUE_PARAMS})
_GROUP_KEY = re.compile(r"^[A-Za-z0-9_.\-/]{1,100}$")
_BUCKET = re.compile(r"^(\d{1,2})([mhd])$")
# Bin sizes that divide the next larger unit, so bins align on local hours and days whichever path
# computes them ($dateTrunc aligns other sizes on 2000-01-01, epoch arithmetic on 1970-01-01).
BUCKET_SIZES = {"m": (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30), "h": (1, 2, 3, 4, 6, 8, 12), "d": (1,)}
E = TypeVar("E", bound=StrEnum)


class AggregateFn(StrEnum):
    COUNT = "count"
    SUM = "sum"
    AVG = "avg"
    MIN = "min"
    MAX = "max"
    P50 = "p50"
    P90 = "p90"
    P95 = "p95"
    P99 = "p99"

    @property
    def percentile(self) -> int | None:
        return int(self.value[1:]) if self.value.startswith("p") else None


class BucketUnit(StrEnum):
    MINUTE = "m"
    HOUR = "h"
    DAY = "d"


@dataclass(frozen=True, slots=True)
class Bucket:
    size: int
    unit: BucketUnit

    @property
    def label(self) -> str:
        return f"{self.size}{self.unit.value}"

    @property
    def seconds(self) -> int:
        return self.size * UNIT_SECONDS[self.unit.value]


def parse_bucket(text: str) -> Bucket:
    """`1m`, `5m`, `15m`, `1h`, `6h`, `1d`…; ValueError lists the sizes there are."""
    match = _BUCKET.match(text)
    if match is None or int(match.group(1)) not in BUCKET_SIZES[match.group(2)]:
        raise ValueError(f"must be one of {', '.join(bucket_labels())}")
    return Bucket(int(match.group(1)), BucketUnit(match.group(2)))


def bucket_labels() -> list[str]:
    return [f"{size}{unit}" for unit, sizes in BUCKET_SIZES.items() for size in sizes]


@dataclass(frozen=True, slots=True)
class AggregateQuery:
    fn: AggregateFn = AggregateFn.COUNT
    name: str | None = None
    name_prefix: str | None = None
    tags: tuple[str, ...] = ()
    start: datetime | None = None
    end: datetime | None = None
    values: ValueRange = field(default_factory=ValueRange)
    bucket: Bucket | None = None
    group_by: str | None = None
    top: int | None = None
    order: SortOrder = SortOrder.DESC
    tz: str = "UTC"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    def to_params(self) -> list[tuple[str, str]]:
        """The normal form as query parameters: every spelling of one query gives the same list."""
        params: list[tuple[str, str]] = [("fn", self.fn.value)]
        if self.name is not None:
            params.append(("name", self.name))
        if self.name_prefix is not None:
            params.append(("name_prefix", self.name_prefix))
        params += [("tag", tag) for tag in self.tags]
        if self.start is not None:
            params.append(("from", format_timestamp(self.start)))
        if self.end is not None:
            params.append(("to", format_timestamp(self.end)))
        params += self.values.to_params()
        if self.bucket is not None:
            params.append(("bucket", self.bucket.label))
        if self.group_by is not None:
            params.append(("group_by", self.group_by))
        if self.top is not None:
            params += [("top", str(self.top)), ("order", self.order.value)]
        if self.tz != "UTC":
            params.append(("tz", self.tz))
        return params

    def url(self) -> str:
        return f"{AGGREGATE_PATH}?{urlencode(self.to_params())}"

    def cache_key(self) -> str:
        return "aggregate|" + urlencode(self.to_params())

    def to_json(self) -> dict[str, Any]:
        return {
            "fn": self.fn.value,
            "name": self.name,
            "name_prefix": self.name_prefix,
            "tags": list(self.tags),
            "from": format_timestamp(self.start) if self.start else None,
            "to": format_timestamp(self.end) if self.end else None,
            "value": self.values.to_json(),
            "bucket": self.bucket.label if self.bucket else None,
            "group_by": self.group_by,
            "top": self.top,
            "order": self.order.value if self.top is not None else None,
            "tz": self.tz,
        }


def parse_aggregate_query(params: Sequence[tuple[str, str]], now: datetime) -> AggregateQuery:
    """Read the parameters of `GET /metrics/aggregate`; every problem found is reported."""
    errors: list[FieldError] = []

    def fail(field_name: str, message: str) -> None:
        errors.append(FieldError(field_name, message))

    single, tags = collect_params(params, _PARAMS, fail)
    fn = _choice(single, "fn", AggregateFn, AggregateFn.COUNT, fail)
    name = check_name(single["name"], fail) if "name" in single else None
    prefix = single.get("name_prefix")
    if prefix is not None:
        prefix = check_name(prefix, lambda _, message: fail("name_prefix", message))
        if name is not None:
            fail("name_prefix", "cannot be combined with name")
    start, end = _window(single, now, fail)
    bucket = None
    if "bucket" in single:
        try:
            bucket = parse_bucket(single["bucket"])
        except ValueError as exc:
            fail("bucket", str(exc))
    query = AggregateQuery(
        fn=fn,
        name=name,
        name_prefix=prefix,
        tags=tuple(sorted(set(check_tags(tags, fail)))) if tags else (),
        start=start,
        end=end,
        values=parse_value_range(single, fail),
        bucket=bucket,
        group_by=_group_by(single.get("group_by"), fail),
        top=_top(single.get("top"), fail),
        order=_choice(single, "order", SortOrder, SortOrder.DESC, fail),
        tz=_zone_key(single.get("tz"), fail),
    )
    errors += [FieldError(f, m) for f, m in check_query(query)]
    if errors:
        raise ValidationFailed(errors)
    return query


def check_query(query: AggregateQuery) -> list[tuple[str, str]]:
    """Rules across fields, shared by the parameter parser and the prompt parser."""
    problems: list[tuple[str, str]] = []
    if query.top is not None and query.group_by is None:
        problems.append(("top", "needs group_by: top-k ranks groups"))
    if query.top is not None and query.bucket is not None:
        problems.append(("top", "cannot be combined with bucket"))
    if query.bucket and query.start and query.end:
        count = math.ceil((query.end - query.start).total_seconds() / query.bucket.seconds)
        if count > MAX_BUCKETS:
            problems.append(("bucket", f"{count} buckets is more than {MAX_BUCKETS}: use a larger bucket"))
    return problems


def _window(single: dict[str, str], now: datetime, fail: Fail) -> tuple[datetime | None, datetime | None]:
    start = parse_time_param(single, "from", fail)
    end = parse_time_param(single, "to", fail)
    if "range" in single:
        length = parse_duration(single["range"])
        if length is None:
            fail("range", "must be a duration such as 15m, 1h, 7d or 2w")
        elif "from" in single:
            fail("range", "cannot be combined with from")
        else:
            end = end or window_end(now)
            start = max(EARLIEST, end - length)
    if start and end and start >= end:
        fail("from", "must be earlier than `to`")
    return start, end


def _choice(single: dict[str, str], key: str, enum: type[E], default: E, fail: Fail) -> E:
    if key not in single:
        return default
    try:
        return enum(single[key])
    except ValueError:
        fail(key, f"must be one of {', '.join(e.value for e in enum)}")
        return default


def _group_by(raw: str | None, fail: Fail) -> str | None:
    if raw is not None and not _GROUP_KEY.match(raw):
        fail("group_by", "must be `name` or a tag key (letters, digits, _ . - /)")
        return None
    return raw


def _top(raw: str | None, fail: Fail) -> int | None:
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_TOP:
        fail("top", f"must be a whole number from 1 to {MAX_TOP}")
        return None
    return int(raw)


def _zone_key(raw: str | None, fail: Fail) -> str:
    if raw is None:
        return "UTC"
    try:
        return load_zone(raw).key
    except ValueError as exc:
        fail("tz", str(exc))
        return "UTC"
