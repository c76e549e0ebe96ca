"""Time phrases inside prompts: found, resolved to a window, and cut out of the text."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, tzinfo

from telemetry_server.models.time_range import UNIT_SECONDS, window_end
from telemetry_server.prompt.time_words import (
    DATE_PATTERN,
    UNIT_OF_WORD,
    UNIT_PATTERN,
    TimePhraseError,
    TimeWindow,
    calendar_window,
    day_start,
    relative_window,
    resolve_date,
)

_PREP = r"(?:(?:in|over|during|for|within|from|of|on|at) )?(?:the )?"
_BETWEEN = re.compile(rf"\b{_PREP}between (?P<a>{DATE_PATTERN}) and (?P<b>{DATE_PATTERN})\b")
_FROM_TO = re.compile(rf"\bfrom (?P<a>{DATE_PATTERN}) (?:to|until|till|through) (?P<b>{DATE_PATTERN})\b")
_CALENDAR = re.compile(rf"\b{_PREP}(?P<word>today|yesterday|(?:this|last|previous|current) (?:week|month|year))\b")
_LAST_N = re.compile(
    rf"\b{_PREP}(?:last|past|previous|recent) (?:(?P<n>\d{{1,6}}|an?) ?)?(?P<unit>months?|{UNIT_PATTERN})\b"
)
_SINCE = re.compile(rf"\b(?:since|after|starting|from) (?P<a>{DATE_PATTERN})\b")
_ON = re.compile(rf"\bon (?P<a>{DATE_PATTERN})\b")
_MONTH_DAYS = 30
CUT = " ; "


def extract_window(text: str, now: datetime, zone: tzinfo) -> tuple[TimeWindow | None, str]:
    """The first time phrase in `text` as a window, and the text without it. TimePhraseError if invalid."""
    for pattern in (_BETWEEN, _FROM_TO, _SINCE, _ON, _CALENDAR, _LAST_N):
        match = pattern.search(text)
        if match is not None:
            window = _resolve(pattern, match, now, zone)
            return window, text[: match.start()] + CUT + text[match.end() :]
    return None, text


def _resolve(pattern: re.Pattern[str], match: re.Match[str], now: datetime, zone: tzinfo) -> TimeWindow:
    phrase = match.group(0).strip()
    if pattern is _CALENDAR:
        word = match.group("word").replace("previous", "last").replace("current", "this")
        return _named(calendar_window(word, now, zone), phrase)
    if pattern is _LAST_N:
        count = match.group("n")
        number = 1 if count is None or not count.isdigit() else int(count)
        unit = match.group("unit")
        seconds = _MONTH_DAYS * 86_400 if unit.startswith("month") else UNIT_SECONDS[UNIT_OF_WORD[unit]]
        if number == 0:
            raise TimePhraseError(phrase, "is an empty window")
        return relative_window(now, timedelta(seconds=min(number * seconds, 100 * 366 * 86_400)), phrase)
    start = resolve_date(match.group("a"), now, zone)
    if pattern is _SINCE:
        if start.at >= window_end(now):
            raise TimePhraseError(phrase, "starts after now: nothing was recorded since")
        return TimeWindow(start.at, window_end(now), phrase)
    if pattern is _ON:
        if not start.whole_day:
            raise TimePhraseError(phrase, "names a moment, not a day")
        local_day = start.at.astimezone(zone).date()
        return TimeWindow(start.at, day_start(local_day + timedelta(days=1), zone), phrase)
    end = resolve_date(match.group("b"), now, zone)
    until = day_start(end.at.astimezone(zone).date() + timedelta(days=1), zone) if end.whole_day else end.at
    if start.at >= until:
        raise TimePhraseError(phrase, "ends before it starts")
    return TimeWindow(start.at, until, phrase)


def _named(window: TimeWindow, phrase: str) -> TimeWindow:
    return TimeWindow(window.start, window.end, phrase)
