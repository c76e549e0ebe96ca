"""Matching a name typed in a prompt to the metric names that exist: exact, then prefix, then closest."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


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
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = ca != cb
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return min(previous[-1], limit + 1)


def allowed_distance(text: str) -> int:
    """Typos tolerated: none in very short words (too many false friends), then one per four letters, at most 3."""
    return 0 if len(text) < 4 else min(3, max(1, len(text) // 4))


# PERF: matching a typo against 200 names took 8-17 ms of event-loop time per prompt; the names change at
# most every few seconds and prompts repeat, so answers are remembered (the tuple of names is the key).
@functools.lru_cache(maxsize=4096)
def resolve_name(text: str, names: tuple[str, ...]) -> NameMatch | None:
    """The metric `text` means, case-insensitively; None when no name is close enough.

    A prefix matching one name resolves to that name; matching several, to the prefix itself. Ties in
    distance go to the alphabetically first name, so the answer never depends on the order of `names`.
    """
    wanted = text.lower()
    by_lower: dict[str, str] = {}
    for name in sorted(names):
        by_lower.setdefault(name.lower(), name)
    if text in names:
        return NameMatch(text, MatchKind.EXACT, name=text)
    if wanted in by_lower:
        return NameMatch(text, MatchKind.EXACT, name=by_lower[wanted])
    prefixed = [name for lower, name in by_lower.items() if lower.startswith(wanted)]
    if len(prefixed) == 1:
        return NameMatch(text, MatchKind.PREFIX, name=prefixed[0])
    if prefixed:
        prefix = prefixed[0][: len(text)]
        return NameMatch(text, MatchKind.PREFIX, prefix=prefix, candidates=len(prefixed))
    limit = allowed_distance(wanted)
    best: tuple[int, str] | None = None
    for lower, name in sorted(by_lower.items()):
        distance = edit_distance(wanted, lower, limit)
        if distance <= limit and (best is None or distance < best[0]):
            best = (distance, name)
    if best is None:
        return None
    return NameMatch(text, MatchKind.CLOSEST, name=best[1], distance=best[0])


@functools.lru_cache(maxsize=1024)
def suggestions(text: str, names: tuple[str, ...], count: int = 3) -> tuple[str, ...]:
    """The nearest few names, for an error message."""
    wanted = text.lower()
    ranked = sorted((edit_distance(wanted, n.lower(), 64), n) for n in names)
    return tuple(name for _, name in ranked[:count])
