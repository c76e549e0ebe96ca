"""Time windows from words: durations (`15m`), calendar periods (`this week`) and dates (`since monday`).

Everything is computed from a `now` passed in and an IANA zone; calendar days start at local midnight.
Windows are half-open, [start, end). Relative windows end at `now` rounded up to the next whole second,
so the same question asked twice within a second is the same query (and the same cache entry).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from telemetry_server.models.time_range import UNIT_SECONDS, window_end
from telemetry_server.models.timestamps import EARLIEST, truncate_to_millis

_UNIT_WORDS = {
    "s": ("s", "sec", "secs", "second", "seconds"),
    "m": ("m", "min", "mins", "minute", "minutes"),
    "h": ("h", "hr", "hrs", "hour", "hours"),
    "d": ("d", "day", "days"),
    "w": ("w", "wk", "wks", "week", "weeks"),
}
UNIT_OF_WORD = {word: unit for unit, words in _UNIT_WORDS.items() for word in words}
UNIT_PATTERN = "|".join(sorted(UNIT_OF_WORD, key=len, reverse=True))
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_WEEKDAY_OF = {**{d: i for i, d in enumerate(_WEEKDAYS)}, **{d[:3]: i for i, d in enumerate(_WEEKDAYS)}}
_WEEKDAY_OF.update({"tues": 1, "thur": 3, "thurs": 3})
_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september")
_MONTHS_LATE = ("october", "november", "december")
_MONTH_OF = {
    **{m: i + 1 for i, m in enumerate(_MONTHS + _MONTHS_LATE)},
    **{m[:3]: i + 1 for i, m in enumerate(_MONTHS + _MONTHS_LATE)},
}
_MONTH_OF["sept"] = 9


class TimePhraseError(ValueError):
    """A time phrase was recognised but names no valid moment (e.g. `since february 30`)."""

    def __init__(self, phrase: str, reason: str) -> None:
        super().__init__(f"{phrase!r} {reason}")
        self.phrase = phrase


@dataclass(frozen=True, slots=True)
class TimeWindow:
    start: datetime | None
    end: datetime | None
    phrase: str = ""


def relative_window(now: datetime, length: timedelta, phrase: str = "") -> TimeWindow:
    end = window_end(now)
    return TimeWindow(max(EARLIEST, end - length), end, phrase)


def day_start(day: date, zone: tzinfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def calendar_window(word: str, now: datetime, zone: tzinfo) -> TimeWindow:
    """today, yesterday, this/last week (weeks start on Monday), this/last month, this/last year."""
    today = now.astimezone(zone).date()
    monday = today - timedelta(days=today.weekday())
    first = today.replace(day=1)
    previous_first = (first - timedelta(days=1)).replace(day=1)
    spans = {
        "today": (today, today + timedelta(days=1)),
        "yesterday": (today - timedelta(days=1), today),
        "this week": (monday, monday + timedelta(days=7)),
        "last week": (monday - timedelta(days=7), monday),
        "this month": (first, _next_month(first)),
        "last month": (previous_first, first),
        "this year": (date(today.year, 1, 1), date(today.year + 1, 1, 1)),
        "last year": (date(today.year - 1, 1, 1), date(today.year, 1, 1)),
    }
    start, end = spans[word]
    return TimeWindow(day_start(start, zone), day_start(end, zone), word)


def _next_month(first: date) -> date:
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)


# --- dates inside phrases: `since monday`, `between 2026-11-01 and 2026-11-03`, `since 2 hours ago` ----

_DAY_NAME = "|".join(sorted(_WEEKDAY_OF, key=len, reverse=True))
_MONTH_NAME = "|".join(sorted(_MONTH_OF, key=len, reverse=True))
_ORDINAL = r"(?:st|nd|rd|th)?"
DATE_PATTERN = (
    r"(?:\d{4}-\d{2}-\d{2}(?:[t ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:z|[+-]\d{2}:?\d{2})?)?"
    rf"|(?:last )?(?:{_DAY_NAME})"
    r"|today|yesterday|now"
    rf"|\d{{1,6}} ?(?:{UNIT_PATTERN}) ago"
    rf"|(?:{_MONTH_NAME}) \d{{1,2}}{_ORDINAL}(?:,? \d{{4}})?"
    rf"|\d{{1,2}}{_ORDINAL} (?:of )?(?:{_MONTH_NAME})(?:,? \d{{4}})?)"
)
_AGO = re.compile(rf"^(\d+) ?({UNIT_PATTERN}) ago$")
_MONTH_DAY = re.compile(rf"^({_MONTH_NAME}) (\d{{1,2}}){_ORDINAL}(?:,? (\d{{4}}))?$")
_DAY_MONTH = re.compile(rf"^(\d{{1,2}}){_ORDINAL} (?:of )?({_MONTH_NAME})(?:,? (\d{{4}}))?$")


@dataclass(frozen=True, slots=True)
class Moment:
    """A resolved date phrase: its start, and whether it names a whole day (so `until` it means its end)."""

    at: datetime
    whole_day: bool


def resolve_date(text: str, now: datetime, zone: tzinfo) -> Moment:
    """Resolve one DATE_PATTERN match; TimePhraseError when it names no real moment."""
    today = now.astimezone(zone).date()
    if text == "now":
        return Moment(window_end(now), False)
    if text in ("today", "yesterday"):
        return Moment(day_start(today - timedelta(days=text == "yesterday"), zone), True)
    if text[0].isdigit() and "-" in text[:5]:
        return _resolve_iso(text, zone)
    ago = _AGO.match(text)
    if ago:
        seconds = int(ago.group(1)) * UNIT_SECONDS[UNIT_OF_WORD[ago.group(2)]]
        return Moment(max(EARLIEST, window_end(now) - timedelta(seconds=min(seconds, 100 * 366 * 86_400))), False)
    weekday = text.removeprefix("last ")
    if weekday in _WEEKDAY_OF:
        back = (today.weekday() - _WEEKDAY_OF[weekday]) % 7
        if text.startswith("last ") and back == 0:
            back = 7
        return Moment(day_start(today - timedelta(days=back), zone), True)
    return Moment(day_start(_resolve_month_day(text, today), zone), True)


def _resolve_iso(text: str, zone: tzinfo) -> Moment:
    try:
        moment = datetime.fromisoformat(text.upper().replace(" ", "T"))
    except ValueError:
        raise TimePhraseError(text, "is not a real date") from None
    whole_day = len(text) == 10
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    moment = truncate_to_millis(moment.astimezone(UTC))
    if moment < EARLIEST:
        raise TimePhraseError(text, "is before 1970")
    return Moment(moment, whole_day)


def _resolve_month_day(text: str, today: date) -> date:
    match = _MONTH_DAY.match(text)
    if match:
        month_name, day_text, year_text = match.groups()
    else:
        day_match = _DAY_MONTH.match(text)
        if day_match is None:
            raise TimePhraseError(text, "is not a date")
        day_text, month_name, year_text = day_match.groups()
    year = int(year_text) if year_text else today.year
    try:
        day = date(year, _MONTH_OF[month_name], int(day_text))
        if not year_text and day > today:  # `since march 3` in January means last March
            day = day.replace(year=year - 1)
    except ValueError:
        raise TimePhraseError(text, "is not a real date") from None
    if day.year < 1970:
        raise TimePhraseError(text, "is before 1970")
    return day
