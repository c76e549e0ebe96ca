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
# Past this many names aligned, suggestions are the nearest among the names of the nearest lengths seen.
_SUGGESTION_BUDGET = 10_000
# Names aligned per call into rapidfuzz, which holds the GIL: ~0.8 ms, so a parse run in a thread lets the
# event loop in between calls.
_CHUNK = 4096

_Buckets = dict[int, tuple[list[str], list[str]]]  # length -> (lowers, the key each ranks by), key-ascending


def _nearest(
    wanted: str, buckets: _Buckets, count: int, limit: int, budget: int | None = None
) -> list[tuple[int, str]]:
    """The `count` nearest (distance, key) within `limit` edits, by distance then key.

    A name `r` letters longer or shorter is at least `r` edits away, so lengths are searched nearest first
    and the search stops once `count` names are nearer than the next ring of lengths can be (or, with a
    budget, once that many names were aligned).
    """
    found: list[tuple[int, str]] = []
    aligned = 0
    for ring in range(limit + 1):
        if len(found) >= count and (found[-1][0] < ring or (budget is not None and aligned >= budget)):
            break
        for length in (len(wanted) - ring, len(wanted) + ring) if ring else (len(wanted),):
            if length not in buckets:
                continue
            lowers, keys = buckets[length]
            for start in range(0, len(lowers), _CHUNK):
                cutoff = found[-1][0] if len(found) >= count else limit
                ranked = process.extract(
                    wanted, lowers[start : start + _CHUNK], scorer=OSA.distance, limit=count, score_cutoff=cutoff
                )
                found = sorted(found + [(int(distance), keys[start + i]) for _, distance, i in ranked])[:count]
            aligned += len(lowers)
    return found


class NameIndex:
    """The metric names, indexed once per names refresh so that matching a prompt's name is bounded work.

    Lower-cased names are kept sorted: a prefix is a range found by bisection. They are also grouped by
    length: the closest names are searched nearest length first, a few thousand names per call into
    rapidfuzz's OSA distance (C++, bit-parallel).
    """

    # PERF: a prompt with a 30-letter typo against 100k names took 53.6 s of CPU with an alignment per name
    # in Python (1.24 s at 2,000 names); with this index and every name ranked for the 422's suggestions,
    # 32 ms. Searching lengths nearest first, suggestions within a budget: 1.0 ms at 2,000 names, 3.3 ms at
    # 10k, 12 ms at 100k (8 ms of it finding no name within 3 edits among the ~30k of a near length, 3 ms
    # the suggestions); a near typo 3.3 ms at 100k, was 6.8 (python -m bench.name_match --names
    # 2000,10000,100000 --prompts 40, on 2 busy cores).
    def __init__(self, names: Iterable[str]) -> None:
        self.names = tuple(sorted(set(names)))
        by_lower: dict[str, str] = {}
        for name in self.names:
            by_lower.setdefault(name.lower(), name)  # the alphabetically first of names differing in case
        self._lowers = sorted(by_lower)
        self._first = [by_lower[lower] for lower in self._lowers]
        self._names = frozenset(self.names)
        self.lower_names = frozenset(by_lower)
        by_length: dict[int, list[str]] = {}
        for lower in self._lowers:
            by_length.setdefault(len(lower), []).append(lower)
        self._lower_buckets: _Buckets = {length: (lowers, lowers) for length, lowers in by_length.items()}
        self._name_buckets: _Buckets = {}  # each name, as its lower, ranked by the name itself
        for name in self.names:
            lowers, keys = self._name_buckets.setdefault(len(name.lower()), ([], []))
            lowers.append(name.lower())
            keys.append(name)
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
        found = _nearest(lower_text, self._lower_buckets, 1, limit)
        if not found:
            return None
        distance, lower = found[0]
        return self._first[bisect_left(self._lowers, lower)], distance

    def suggestions(self, text: str, count: int = _SUGGESTED) -> tuple[str, ...]:
        """The nearest few names, for an error message: by distance, then alphabetically; every name more
        than `_FAR` edits away is equally far. Bounded: see `_SUGGESTION_BUDGET`."""
        found = _nearest(text.lower(), self._name_buckets, count, _FAR, _SUGGESTION_BUDGET)
        picked = [name for _, name in found]
        for name in self.names:  # then alphabetically, when fewer names are within `_FAR`
            if len(picked) >= count:
                break
            if name not in picked:
                picked.append(name)
        return tuple(picked)


@functools.lru_cache(maxsize=3)
def index_names(names: tuple[str, ...]) -> NameIndex:
    """The index of these names; the last three are remembered (the names in use, a fresh read being indexed
    off the event loop, and the LLM parser's example names), so an index is never rebuilt for them."""
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
