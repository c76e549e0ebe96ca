"""Matching a name typed in a prompt to the metric names that exist: exact, then prefix, then closest."""

from __future__ import annotations

import functools
import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from rapidfuzz import process
from rapidfuzz.distance import OSA

from telemetry_server.models.metric import MAX_NAME_LENGTH


class MatchKind(StrEnum):
    EXACT = "exact"
    PREFIX = "prefix"
    CLOSEST = "closest"


@dataclass(frozen=True, slots=True)
class NameMatch:
    """`name` is set for a single metric; `prefix` when several names share the typed prefix."""

    text: str
    kind: MatchKind
    name: str | None = None
    prefix: str | None = None
    candidates: int = 1
    distance: int = 0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"text": self.text, "match": self.kind.value}
        if self.name is not None:
            out["name"] = self.name
        else:
            out["name_prefix"] = self.prefix
            out["names_matched"] = self.candidates
        if self.kind is MatchKind.CLOSEST:
            out["distance"] = self.distance
        return out


def edit_distance(a: str, b: str, limit: int) -> int:
    """Optimal string alignment distance (a swap of neighbours counts 1); `limit + 1` once past `limit`."""
    return OSA.distance(a, b, score_cutoff=limit)


def allowed_distance(text: str) -> int:
    """Typos tolerated: none in very short words (too many false friends), then one per four letters, at most 3."""
    return 0 if len(text) < 4 else min(3, max(1, len(text) // 4))


_SEGMENT = re.compile(r"[._\-:/]")
_PAST_EVERY_NAME = "\U0010ffff"  # sorts after any character a name may hold: the end of a prefix's range
_SUGGESTED = 3
_FAR = 64


class NameIndex:
    """The metric names, indexed once per names refresh so that matching a prompt's name is bounded work.

    Lower-cased names are kept sorted: a prefix is a range found by bisection, and the closest name is one
    call into rapidfuzz's OSA distance (C++, bit-parallel, a length filter before any alignment).
    """

    # PERF: a prompt with a 30-letter typo against 100k names took 53.6 s of CPU with an alignment per name
    # in Python (1.24 s at 2,000 names). With this index: 0.9 ms at 2,000 names, 33 ms at 100k (7 ms to
    # find no close name among the names of a near length, the rest ranking the suggestions of the 422);
    # a near typo 7 ms (python -m bench.name_match).
    def __init__(self, names: Iterable[str]) -> None:
        self.names = tuple(sorted(set(names)))
        by_lower: dict[str, str] = {}
        for name in self.names:
            by_lower.setdefault(name.lower(), name)  # the alphabetically first of names differing in case
        self._lowers = sorted(by_lower)
        self._first = [by_lower[lower] for lower in self._lowers]
        self._names = frozenset(self.names)
        self._all_lowers = [name.lower() for name in self.names]
        self.lower_names = frozenset(by_lower)
        self._by_length: dict[int, list[str]] = {}  # each list ascending alphabetically, as `_lowers`
        for lower in self._lowers:
            self._by_length.setdefault(len(lower), []).append(lower)
        self.words = frozenset(by_lower) | {word for lower in by_lower for word in _SEGMENT.split(lower)}

    def exact(self, text: str) -> str | None:
        """The name `text` is, case-insensitively (itself when it is one)."""
        if text in self._names:
            return text
        lower = text.lower()
        i = bisect_left(self._lowers, lower)
        return self._first[i] if i < len(self._lowers) and self._lowers[i] == lower else None

    def starting_with(self, lower_prefix: str) -> tuple[str | None, int]:
        """The alphabetically first name starting with `lower_prefix` (case-insensitively), and how many do."""
        lo = bisect_left(self._lowers, lower_prefix)
        hi = bisect_right(self._lowers, lower_prefix + _PAST_EVERY_NAME, lo)
        if lo == hi:
            return None, 0
        return min(self._first[lo:hi]), hi - lo

    def closest(self, lower_text: str, limit: int) -> tuple[str, int] | None:
        """The name nearest `lower_text` within `limit` edits; ties go to the alphabetically first."""
        if len(lower_text) > MAX_NAME_LENGTH + limit:
            return None  # no name is that long: nothing to align
        best: tuple[int, str] | None = None  # (distance, lower)
        for length in range(len(lower_text) - limit, len(lower_text) + limit + 1):
            lowers = self._by_length.get(length)
            if not lowers:
                continue  # more than `limit` letters apart in length: more than `limit` edits apart
            found = process.extractOne(lower_text, lowers, scorer=OSA.distance, score_cutoff=limit)
            if found is not None and (best is None or (found[1], found[0]) < best):
                best = (int(found[1]), found[0])
        if best is None:
            return None
        return self._first[bisect_left(self._lowers, best[1])], best[0]

    def suggestions(self, text: str, count: int = _SUGGESTED) -> tuple[str, ...]:
        """The nearest few names, for an error message: by distance, then alphabetically; every name more
        than `_FAR` edits away is equally far."""
        wanted = text.lower()
        picked: list[int] = []
        if len(wanted) <= MAX_NAME_LENGTH + _FAR:  # a longer text is far from every name alike
            ranked = process.extract(wanted, self._all_lowers, scorer=OSA.distance, limit=count, score_cutoff=_FAR)
            picked = [i for _, _, i in ranked]
        for i in range(len(self.names)):
            if len(picked) >= count:
                break
            if i not in picked:
                picked.append(i)
        return tuple(self.names[i] for i in picked)


@functools.lru_cache(maxsize=2)
def index_names(names: tuple[str, ...]) -> NameIndex:
    """The index of these names; the last two are remembered, so one built off the event loop is reused."""
    return NameIndex(names)


def resolve_name(text: str, index: NameIndex) -> NameMatch | None:
    """The metric `text` means, case-insensitively; None when no name is close enough.

    A prefix matching one name resolves to that name; matching several, to the prefix itself. Ties in
    distance go to the alphabetically first name, so the answer never depends on the order of the names.
    """
    wanted = text.lower()
    exact = index.exact(text)
    if exact is not None:
        return NameMatch(text, MatchKind.EXACT, name=exact)
    first, count = index.starting_with(wanted)
    if first is not None and count == 1:
        return NameMatch(text, MatchKind.PREFIX, name=first)
    if first is not None:
        return NameMatch(text, MatchKind.PREFIX, prefix=first[: len(text)], candidates=count)
    best = index.closest(wanted, allowed_distance(wanted))
    if best is None:
        return None
    return NameMatch(text, MatchKind.CLOSEST, name=best[0], distance=best[1])
