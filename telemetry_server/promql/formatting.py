"""Prometheus' JSON spelling of sample values and timestamps."""

from __future__ import annotations

import math
from decimal import Decimal


def format_value(value: float) -> str:
    """Go's strconv.FormatFloat(v, 'f', -1, 64): the shortest digits that round-trip, never an exponent."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = repr(value)
    if "e" in text:
        text = format(Decimal(text), "f")
    if text.endswith(".0"):
        text = text[:-2]
    return text


def format_time(ms: int) -> int | float:
    """Unix seconds, whole when the millisecond part is zero, as Prometheus writes them."""
    return ms // 1000 if ms % 1000 == 0 else ms / 1000
