"""The Prometheus HTTP API's parameters as Prometheus reads them: times, durations and steps."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

from telemetry_server.errors import BadRequest

_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000, "y": 31_536_000_000}
# Prometheus' durations: units from the largest down, each at most once ("1h30m", "90s", "1d").
_DURATION = re.compile(r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$")
_DURATION_UNITS = ("y", "w", "d", "h", "m", "s", "ms")
_FRACTION = re.compile(r"(\.\d{1,6})\d*")
# What Prometheus' clients send for "no bound" (Go's minimum and maximum times, as Prometheus formats them).
_MIN_TIME = ("-292273086-05-16T16:47:06Z", "0001-01-01T00:00:00Z")
_MAX_TIME = ("292277025-08-18T07:12:54.999999999Z",)
MIN_MS = -(2**62)
MAX_MS = 2**62


def parse_time(text: str, name: str) -> int:
    """Milliseconds since the epoch of a Unix time in seconds (decimals allowed) or an RFC 3339 time."""
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds):
            raise BadRequest(f"invalid parameter {name!r}: cannot parse {text!r} to a valid timestamp")
        return round(seconds * 1000)
    if text in _MIN_TIME:
        return MIN_MS
    if text in _MAX_TIME:
        return MAX_MS
    try:
        moment = datetime.fromisoformat(_FRACTION.sub(r"\1", text, count=1))
    except ValueError:
        raise BadRequest(f"invalid parameter {name!r}: cannot parse {text[:64]!r} to a valid timestamp") from None
    if moment.tzinfo is None:
        raise BadRequest(f"invalid parameter {name!r}: {text[:64]!r} has no time zone (RFC 3339 needs one)")
    return round(moment.astimezone(UTC).timestamp() * 1000)


def parse_duration(text: str, name: str) -> int:
    """Milliseconds of a duration in seconds (decimals allowed) or in Prometheus' units (`5m`, `1h30m`)."""
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        match = _DURATION.match(text)
        if not text or match is None:
            raise BadRequest(f"invalid parameter {name!r}: cannot parse {text[:64]!r} to a valid duration") from None
        parts = zip(match.groups(), _DURATION_UNITS, strict=True)
        return sum(int(count) * _UNITS_MS[unit] for count, unit in parts if count)
    if not math.isfinite(seconds) or abs(seconds) > 2**53 / 1000:
        raise BadRequest(f"invalid parameter {name!r}: cannot parse {text!r} to a valid duration")
    return round(seconds * 1000)
