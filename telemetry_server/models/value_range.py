"""A filter on metric values: the bounds given as `value_gt`, `value_gte`, `value_lt` and `value_lte`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from telemetry_server.models.metric import Fail
from telemetry_server.models.timestamps import is_number_text

VALUE_PARAMS = ("value_gt", "value_gte", "value_lt", "value_lte")


@dataclass(frozen=True, slots=True)
class ValueRange:
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None

    @property
    def bounded(self) -> bool:
        return any(bound is not None for bound in self.bounds().values())

    def bounds(self) -> dict[str, float | None]:
        """Operator (gt, gte, lt, lte) → bound."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def to_params(self) -> list[tuple[str, str]]:
        return [(f"value_{op}", format_number(v)) for op, v in self.bounds().items() if v is not None]

    def to_json(self) -> dict[str, Any] | None:
        bounds = {op: v for op, v in self.bounds().items() if v is not None}
        return bounds or None


def format_number(number: float) -> str:
    """`90` rather than `90.0`: the normal form of a bound in URLs and cache keys."""
    return str(int(number)) if number.is_integer() and abs(number) < 1e15 else repr(number)


def parse_value_range(single: Mapping[str, str], fail: Fail) -> ValueRange:
    """Read the `value_*` parameters present in `single`; a contradiction or a non-number is an error."""
    found: dict[str, float] = {}
    for param in VALUE_PARAMS:
        raw = single.get(param)
        if raw is None:
            continue
        if not is_number_text(raw):
            fail(param, "must be a number in ASCII digits, e.g. 90, -0.5 or 1e3")
            continue
        number = float(raw)
        if not math.isfinite(number):
            fail(param, "must be a finite number")
            continue
        found[param.removeprefix("value_")] = number
    if "gt" in found and "gte" in found:
        fail("value_gte", "cannot be combined with value_gt")
    if "lt" in found and "lte" in found:
        fail("value_lte", "cannot be combined with value_lt")
    return ValueRange(**found)
