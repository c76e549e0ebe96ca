"""Matching a typed name to the metric names that exist: exact, then prefix, then closest by edit distance."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from telemetry_server.prompt.names import MatchKind, NameIndex, NameMatch, allowed_distance, edit_distance, resolve_name


def test_names_resolve_exact_then_prefix_then_closest() -> None:
    names = NameIndex(("cpu.load", "cpu.idle", "latency.ms"))
    assert resolve_name("CPU.LOAD", names).kind is MatchKind.EXACT  # type: ignore[union-attr]
    assert resolve_name("lat", names).name == "latency.ms"  # type: ignore[union-attr]
    assert resolve_name("cpu", names).prefix == "cpu"  # type: ignore[union-attr]
    assert resolve_name("cpu.lod", names).name == "cpu.load"  # type: ignore[union-attr]
    assert resolve_name("banana", names) is None
    assert edit_distance("todya", "today", 2) == 1
    assert edit_distance("abc", "xyzabc", 2) == 3


def _osa(a: str, b: str) -> int:
    """Optimal string alignment distance, by the book: the reference the index must agree with."""
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[-1][-1]


def _reference(text: str, names: tuple[str, ...]) -> NameMatch | None:
    """A scan of every name: exact, then prefix, then the closest within the allowed distance."""
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
        return NameMatch(text, MatchKind.PREFIX, prefix=prefixed[0][: len(text)], candidates=len(prefixed))
    limit = allowed_distance(wanted)
    ranked = sorted((_osa(wanted, lower), lower) for lower in by_lower)
    if not ranked or ranked[0][0] > limit:
        return None
    return NameMatch(text, MatchKind.CLOSEST, name=by_lower[ranked[0][1]], distance=ranked[0][0])


_NAME = st.text(alphabet="abcAB.x_", min_size=1, max_size=9)


@settings(max_examples=300, deadline=None)
@given(st.lists(_NAME, max_size=12).map(tuple), _NAME)
def test_the_index_matches_as_a_scan_of_every_name(names: tuple[str, ...], text: str) -> None:
    assert resolve_name(text, NameIndex(names)) == _reference(text, names)


@settings(max_examples=200, deadline=None)
@given(st.lists(_NAME, max_size=12).map(tuple), _NAME)
def test_suggestions_are_the_nearest_names_then_alphabetical(names: tuple[str, ...], text: str) -> None:
    expected = tuple(n for _, n in sorted((_osa(text.lower(), n.lower()), n) for n in set(names))[:3])
    assert NameIndex(names).suggestions(text) == expected


def test_a_text_longer_than_any_name_is_matched_without_aligning() -> None:
    index = NameIndex(("cpu.load",))
    assert index.closest("x" * 500, 3) is None
    assert index.suggestions("x" * 500) == ("cpu.load",)
