"""InfluxDB line protocol decoded into our metrics: one point per numeric field of each line.

Each line is parsed by `line-protocol-parser` (C). PERF: on a TSBS cpu line (10 tags, 10 integer fields) it
took 26-35 µs a line where a hand-written split that skips escapes took 37-54 µs on the same loaded 2-core
machine (`python -m bench.line_protocol_parse`); escapes and quoted strings would only slow a hand-written one.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum

from line_protocol_parser import LineFormatError, parse_line

from telemetry_server.errors import FieldError, PayloadTooLarge, ValidationFailed, excerpt
from telemetry_server.ingest.naming import IngestOutcome, NameRefused, metric_name, tag_set
from telemetry_server.models.metric import MetricInput
from telemetry_server.models.timestamps import EARLIEST

# Our timestamps are whole milliseconds (what MongoDB keeps): a finer one is truncated, as a JSON one is.
_LATEST_MILLIS = int((datetime(9999, 12, 31, tzinfo=EARLIEST.tzinfo) - EARLIEST).total_seconds() * 1000)


class Precision(Enum):
    """The unit of a line's timestamp, as the `precision` parameter names it: (multiplier, divisor) to
    milliseconds, in integers (a float of nanoseconds since 1970 has no room for the last digits)."""

    NANOSECONDS = (1, 1_000_000)
    MICROSECONDS = (1, 1000)
    MILLISECONDS = (1, 1)
    SECONDS = (1000, 1)
    MINUTES = (60_000, 1)
    HOURS = (3_600_000, 1)


# v1 names (`n`, `u`, `ms`, `s`, `m`, `h`) and the v2 ones (`ns`, `us`); v1 also reads `rfc3339` as ns.
_V1_PRECISIONS = {
    "": Precision.NANOSECONDS,
    "n": Precision.NANOSECONDS,
    "ns": Precision.NANOSECONDS,
    "rfc3339": Precision.NANOSECONDS,
    "u": Precision.MICROSECONDS,
    "us": Precision.MICROSECONDS,
    "µ": Precision.MICROSECONDS,
    "ms": Precision.MILLISECONDS,
    "s": Precision.SECONDS,
    "m": Precision.MINUTES,
    "h": Precision.HOURS,
}
_V2_PRECISIONS = {"": Precision.NANOSECONDS, "ns": Precision.NANOSECONDS, "us": Precision.MICROSECONDS}
_V2_PRECISIONS |= {"ms": Precision.MILLISECONDS, "s": Precision.SECONDS}


def parse_precision(text: str, *, v2: bool) -> Precision:
    """The `precision` parameter of /write (v1) or /api/v2/write; 422 for another."""
    names = _V2_PRECISIONS if v2 else _V1_PRECISIONS
    precision = names.get(text)
    if precision is None:
        allowed = ", ".join(name for name in names if name)
        raise ValidationFailed([FieldError("precision", f"must be one of {allowed}, not {excerpt(text)!r}")])
    return precision


@dataclass(slots=True)
class DecodedLines:
    """The points of a body's good lines, and what was refused: lines that do not parse, fields we cannot store."""

    points: list[MetricInput] = field(default_factory=list)
    bad_lines: int = 0
    refused_fields: int = 0
    first_refusal: str | None = None

    @property
    def dropped(self) -> int:
        """Values not stored: each refused field, and each line that did not parse (its fields unknown)."""
        return self.bad_lines + self.refused_fields

    def outcome(self) -> IngestOutcome:
        return IngestOutcome(len(self.points), self.dropped, self.first_refusal)

    def refuse_line(self, line: str, reason: str) -> None:
        self.bad_lines += 1
        if self.first_refusal is None:
            self.first_refusal = f"unable to parse '{excerpt(line)}': {reason}"

    def refuse_field(self, line: str, reason: str) -> None:
        self.refused_fields += 1
        if self.first_refusal is None:
            self.first_refusal = f"unable to store a field of '{excerpt(line)}': {reason}"


def decode_lines(body: bytes, precision: Precision, now: datetime, max_points: int) -> DecodedLines:
    """Every line of `body` (UTF-8, `\\n`-separated; blank lines and `#` comments skipped). A bad line is
    refused alone, as InfluxDB does; past `max_points` the whole body is refused (413) and nothing stored."""
    decoded = DecodedLines()
    points = decoded.points
    moments: dict[int, datetime] = {}  # lines of one batch share a few timestamps
    for line in _lines(body, decoded):
        if not line or line.isspace():
            continue
        try:
            parsed = parse_line(line)
        except LineFormatError as exc:
            decoded.refuse_line(line, str(exc).rstrip(".").lower())
            continue
        if parsed is None:  # a comment
            continue
        try:
            tags = _tags(tuple(parsed["tags"].items()))
            moment = now if parsed["time"] is None else _moment(parsed["time"], precision, moments)
        except ValueError as exc:  # NameRefused, or a timestamp out of our range
            decoded.refuse_line(line, str(exc))
            continue
        measurement: str = parsed["measurement"]
        for key, value in parsed["fields"].items():
            kind = type(value)
            if kind is float or kind is int:
                number = float(value)
            elif kind is bool:
                number = 1.0 if value else 0.0
            else:
                decoded.refuse_field(line, f"the string field {excerpt(key)!r} is not stored: values are numbers")
                continue
            try:
                name = metric_name(measurement, key)
            except NameRefused as exc:
                decoded.refuse_field(line, str(exc))
                continue
            points.append(MetricInput(name, tags, number, moment))
        if len(points) > max_points:
            raise PayloadTooLarge(f"the body holds more than {max_points} points (INGEST_MAX_POINTS); send it in parts")
    return decoded


def _lines(body: bytes, decoded: DecodedLines) -> list[str]:
    """The body's lines as text; a line that is not UTF-8 is refused alone."""
    try:
        return body.decode().split("\n")
    except UnicodeDecodeError:
        pass
    lines = []
    for raw in body.split(b"\n"):
        try:
            lines.append(raw.decode())
        except UnicodeDecodeError:
            decoded.refuse_line(raw.decode(errors="replace"), "it is not UTF-8")
    return lines


@functools.lru_cache(maxsize=16_384)
def _tags(pairs: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
    """PERF: a batch repeats the tag sets of a few hundred series; remembered, a line's tags cost one lookup."""
    return tag_set(pairs)


def _moment(stamp: int, precision: Precision, moments: dict[int, datetime]) -> datetime:
    moment = moments.get(stamp)
    if moment is None:
        multiplier, divisor = precision.value
        millis = stamp * multiplier // divisor
        if stamp < 0:
            raise ValueError("the timestamp is before 1970-01-01T00:00:00Z")
        if millis > _LATEST_MILLIS:
            raise ValueError("the timestamp is after 9999-12-31")
        moment = moments[stamp] = EARLIEST + timedelta(milliseconds=millis)
    return moment
