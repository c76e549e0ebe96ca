"""Matching a typed name to the metric names that exist: exact, then prefix, then closest by edit distance."""

from __future__ import annotations

from telemetry_server.prompt.names import MatchKind, edit_distance, resolve_name


def test_names_resolve_exact_then_prefix_then_closest() -> None:
    names = ("cpu.load", "cpu.idle", "latency.ms")
    assert resolve_name("CPU.LOAD", names).kind is MatchKind.EXACT  # type: ignore[union-attr]
    assert resolve_name("lat", names).name == "latency.ms"  # type: ignore[union-attr]
    assert resolve_name("cpu", names).prefix == "cpu"  # type: ignore[union-attr]
    assert resolve_name("cpu.lod", names).name == "cpu.load"  # type: ignore[union-attr]
    assert resolve_name("banana", names) is None
    assert edit_distance("todya", "today", 2) == 1
    assert edit_distance("abc", "xyzabc", 2) == 3
