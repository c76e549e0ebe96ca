"""Durations (`15m`, `7d`), the end of relative windows, and IANA zones: a query's `range`, `to` and `tz`.

The query model and the prompt parser both read time through these, so `range=1h` and "the last hour"
are the same window.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_DURATION = re.compile(r"^(\d{1,6})([smhdw])$")
_LONGEST = timedelta(days=366 * 100)


def load_zone(key: str) -> ZoneInfo:
    """An IANA zone by name (`Europe/Paris`); ValueError when there is none (read from the tz database)."""
    if not key or len(key) > 64 or not all(c.isalnum() or c in "/_+-" for c in key):
        raise ValueError(f"{key[:64]!r} is not an IANA time zone such as Europe/Paris")
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"{key!r} is not an IANA time zone such as Europe/Paris") from None


def parse_duration(text: str) -> timedelta | None:
    """`90s`, `15m`, `1h`, `7d`, `2w`; None when the text is not a duration."""
    match = _DURATION.match(text)
    if match is None or int(match.group(1)) == 0:
        return None
    delta = timedelta(seconds=int(match.group(1)) * UNIT_SECONDS[match.group(2)])
    return delta if delta <= _LONGEST else None


def window_end(now: datetime) -> datetime:
    """`now` rounded up to the next whole second: the end of every relative window."""
    floor = now.replace(microsecond=0)
    return floor if floor == now else floor + timedelta(seconds=1)
