"""The engine's entry points: an instant or range PromQL query against a SeriesSource, within limits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from telemetry_server.promql import ast
from telemetry_server.promql.errors import BadData, Execution, PromQLError, Timeout, TooLarge
from telemetry_server.promql.evaluator import Evaluator, Matrix, Value, label_key, selector_windows, type_name
from telemetry_server.promql.formatting import format_time, format_value
from telemetry_server.promql.parse import parse_query
from telemetry_server.promql.source import RawSeries, SeriesSource

__all__ = [
    "BadData",
    "Execution",
    "PromQLError",
    "QueryLimits",
    "QueryResult",
    "Timeout",
    "TooLarge",
    "instant_query",
    "range_query",
]

ResultType = Literal["vector", "matrix", "scalar", "string"]
MAX_STEPS = 11_000  # Prometheus' cap on points per series of a range query


@dataclass(frozen=True, slots=True)
class QueryLimits:
    """Caps on what one query may touch; exceeding one raises TooLarge (series, points) or Timeout."""

    max_series: int = 10_000
    max_points: int = 50_000_000
    timeout_s: float = 30.0


@dataclass(slots=True)
class QueryResult:
    """An answer already in the shape of Prometheus' `data.result` (values as strings)."""

    result_type: ResultType
    result: Any
    warnings: list[str] = field(default_factory=list)


async def instant_query(text: str, time_ms: int, source: SeriesSource, limits: QueryLimits) -> QueryResult:
    deadline = time.monotonic() + limits.timeout_s
    tree = parse_query(text)
    evaluator = Evaluator(await _fetch(tree, time_ms, time_ms, source, limits, deadline))
    value = evaluator.evaluate(tree, time_ms)
    stamp = format_time(time_ms)
    if isinstance(value, float):
        return QueryResult("scalar", [stamp, format_value(value)])
    if isinstance(value, str):
        return QueryResult("string", [stamp, value])
    if isinstance(value, Matrix):
        windows = sorted(value.series, key=lambda w: label_key(w.labels))
        matrix = [{"metric": _sorted(w.labels), "values": _points(w.times, w.values)} for w in windows]
        return QueryResult("matrix", matrix)
    vector = [{"metric": _sorted(labels), "value": [stamp, format_value(v)]} for labels, v in value]
    return QueryResult("vector", vector)


async def range_query(
    text: str, start_ms: int, end_ms: int, step_ms: int, source: SeriesSource, limits: QueryLimits
) -> QueryResult:
    deadline = time.monotonic() + limits.timeout_s
    if step_ms <= 0:
        raise BadData("zero or negative query resolution step widths are not accepted. Try a positive integer")
    if end_ms < start_ms:
        raise BadData("end timestamp must not be before start time")
    if (end_ms - start_ms) // step_ms + 1 > MAX_STEPS:
        raise BadData(
            f"exceeded maximum resolution of {MAX_STEPS:,} points per timeseries. "
            "Try decreasing the query resolution (?step=XX)"
        )
    tree = parse_query(text)
    evaluator = Evaluator(await _fetch(tree, start_ms, end_ms, source, limits, deadline))
    series: dict[tuple[tuple[str, str], ...], list[list[Any]]] = {}
    for t in range(start_ms, end_ms + 1, step_ms):
        if time.monotonic() > deadline:
            raise Timeout("query timed out in expression evaluation")
        value = evaluator.evaluate(tree, t)
        for labels, v in _step_samples(value):
            series.setdefault(label_key(labels), []).append([format_time(t), format_value(v)])
    result = [{"metric": dict(key), "values": values} for key, values in sorted(series.items())]
    return QueryResult("matrix", result)


def _sorted(labels: dict[str, str]) -> dict[str, str]:
    """Labels in name order, as Prometheus writes them."""
    return dict(sorted(labels.items()))


def _points(times: Sequence[int], values: Sequence[float]) -> list[list[Any]]:
    return [[format_time(t), format_value(v)] for t, v in zip(times, values, strict=True)]


def _step_samples(value: Value) -> list[tuple[dict[str, str], float]]:
    if isinstance(value, float):
        return [({}, value)]
    if isinstance(value, list):
        return value
    raise BadData(f'invalid expression type "{type_name(value)}" for range query, must be Scalar or instant Vector')


async def _fetch(
    tree: ast.Expr, start_ms: int, end_ms: int, source: SeriesSource, limits: QueryLimits, deadline: float
) -> dict[ast.VectorSelector, list[RawSeries]]:
    data: dict[ast.VectorSelector, list[RawSeries]] = {}
    series_count = point_count = 0
    for selector, first, last in selector_windows(tree, start_ms, end_ms):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Timeout("query timed out while reading series")
        try:
            async with asyncio.timeout(remaining):
                found = await source.select(selector.matchers, first, last)
        except TimeoutError as exc:
            raise Timeout("query timed out while reading series") from exc
        series_count += len(found)
        point_count += sum(len(s.timestamps) for s in found)
        if series_count > limits.max_series:
            raise TooLarge(f"the query touches more than {limits.max_series} series (PROMQL_MAX_SERIES)")
        if point_count > limits.max_points:
            raise TooLarge(f"the query touches more than {limits.max_points} points (PROMQL_MAX_POINTS)")
        # In label order, as Prometheus' storage answers: aggregation groups, topk's ties and the order of
        # float additions then follow Prometheus'.
        data[selector] = sorted(found, key=lambda s: label_key(s.labels))
    return data
