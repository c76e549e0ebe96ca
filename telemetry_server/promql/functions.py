"""PromQL's functions and aggregations over plain floats, each as Prometheus 2.42 computes it."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence


def go_div(a: float, b: float) -> float:
    if b == 0:
        if a == 0 or math.isnan(a):
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)
    return a / b


def go_mod(a: float, b: float) -> float:
    if b == 0 or math.isinf(a) or math.isnan(a) or math.isnan(b):
        return math.nan
    return math.fmod(a, b)


def _odd_integer(y: float) -> bool:
    return math.isfinite(y) and y == math.floor(y) and math.fmod(y, 2) != 0


def go_pow(a: float, b: float) -> float:
    """Go's math.Pow, which answers Inf or NaN where Python's raises."""
    try:
        return math.pow(a, b)
    except OverflowError:
        return -math.inf if a < 0 and _odd_integer(b) else math.inf
    except ValueError:
        if a == 0 and b < 0:
            return math.copysign(math.inf, a) if _odd_integer(b) else math.inf
        return math.nan


ARITHMETIC: dict[str, Callable[[float, float], float]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": go_div,
    "%": go_mod,
    "^": go_pow,
}
COMPARISON: dict[str, Callable[[float, float], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
}


def go_max(a: float, b: float) -> float:
    """Go's math.Max: NaN wins."""
    return math.nan if math.isnan(a) or math.isnan(b) else max(a, b)


def go_min(a: float, b: float) -> float:
    return math.nan if math.isnan(a) or math.isnan(b) else min(a, b)


def go_round(value: float, to_nearest: float) -> float:
    # Prometheus rounds half up, by the inverse to keep precision (round(2.5) is 3, round(-2.5) is -2).
    inverse = go_div(1.0, to_nearest)
    shifted = value * inverse + 0.5
    return go_div(float(math.floor(shifted)) if math.isfinite(shifted) else shifted, inverse)


def go_ceil(value: float) -> float:
    # Python's ceil answers an int, which has no -0; Go's ceil(-0.5) is -0, and count_values shows it.
    return math.copysign(float(math.ceil(value)), value) if math.isfinite(value) else value


def go_floor(value: float) -> float:
    return math.copysign(float(math.floor(value)), value) if math.isfinite(value) else value


def quantile(q: float, values: Sequence[float]) -> float:
    """Prometheus' quantile: linear interpolation between the closest ranks of the sorted values."""
    if not values or math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    ordered = sorted(values, key=_nan_first)
    rank = q * (len(ordered) - 1)
    lower = max(0, math.floor(rank))
    upper = min(len(ordered) - 1, lower + 1)
    weight = rank - math.floor(rank)
    return ordered[lower] * (1 - weight) + ordered[upper] * weight


def _nan_first(value: float) -> tuple[int, float]:
    # Go's sort.Float64s puts NaN before everything.
    return (0, 0.0) if math.isnan(value) else (1, value)


def extrapolated_rate(
    times: Sequence[int], values: Sequence[float], range_start: int, range_end: int, counter: bool, per_second: bool
) -> float | None:
    """rate, increase and delta: the change across the window, extrapolated to its edges as Prometheus does."""
    if len(values) < 2:
        return None
    result = values[-1] - values[0]
    if counter:
        last = 0.0
        for value in values:
            if value < last:
                result += last  # a counter reset: the counter restarted from zero
            last = value
    to_start = (times[0] - range_start) / 1000
    to_end = (range_end - times[-1]) / 1000
    sampled = (times[-1] - times[0]) / 1000
    average_gap = sampled / (len(values) - 1)
    if counter and result > 0 and values[0] >= 0:
        # A counter does not go below zero: do not extrapolate past the time it would have been zero.
        to_zero = sampled * (values[0] / result)
        to_start = min(to_start, to_zero)
    threshold = average_gap * 1.1
    interval = sampled
    interval += to_start if to_start < threshold else average_gap / 2
    interval += to_end if to_end < threshold else average_gap / 2
    result *= interval / sampled
    if per_second:
        result /= (range_end - range_start) / 1000
    return result


def instant_change(times: Sequence[int], values: Sequence[float], per_second: bool) -> float | None:
    """irate and idelta: from the last two samples."""
    if len(values) < 2:
        return None
    last, previous = values[-1], values[-2]
    result = last if per_second and last < previous else last - previous
    gap = times[-1] - times[-2]
    if gap == 0:
        return None
    return result / (gap / 1000) if per_second else result


def average(values: Sequence[float]) -> float:
    """avg and avg_over_time: the sum over the count while the sum is finite (as Prometheus 3 does), else
    Prometheus' running mean, which keeps an infinite mean from turning NaN and survives an overflowing sum."""
    # PERF: builtin sum is a C loop; the running mean in Python took 2.9 s of 4.5 s in a profile of TSBS's
    # double-groupby-1 (avg_over_time[1h] over 100 series). The two differ in the last bits only.
    result = sum(values)
    if math.isfinite(result):
        return result / len(values)
    mean, count = values[0], 1
    for value in values[1:]:
        count += 1
        if math.isinf(mean):
            if math.isinf(value) and (mean > 0) == (value > 0):
                continue
            if not math.isinf(value) and not math.isnan(value):
                continue
        mean += value / count - mean / count
    return mean


def minimum(values: Sequence[float]) -> float:
    return _extreme(values, min, lambda current, value: current > value)


def maximum(values: Sequence[float]) -> float:
    return _extreme(values, max, lambda current, value: current < value)


def _extreme(
    values: Sequence[float],
    builtin: Callable[[Sequence[float]], float],
    replaces: Callable[[float, float], bool],
) -> float:
    """Go's loop skips NaN unless all are NaN; the builtin (a C loop) does too, except when the first is NaN."""
    result = builtin(values)
    if result == result:
        return result
    for value in values:
        if replaces(result, value) or math.isnan(result):
            result = value
    return result


def total(values: Sequence[float]) -> float:
    # Python 3.11's sum adds left to right in doubles, as Go does (3.12 compensates, closer than Go's).
    return float(sum(values))


OVER_TIME: dict[str, Callable[[Sequence[float]], float]] = {
    "avg_over_time": average,
    "min_over_time": minimum,
    "max_over_time": maximum,
    "sum_over_time": total,
    "count_over_time": lambda values: float(len(values)),
    "last_over_time": lambda values: values[-1],
}


def bucket_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """histogram_quantile over (upper bound, cumulative count) pairs, as Prometheus' bucketQuantile."""
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    buckets = sorted(buckets, key=lambda bucket: bucket[0])
    if not buckets or not math.isinf(buckets[-1][0]):
        return math.nan
    merged: list[list[float]] = []
    for bound, count in buckets:  # buckets with the same bound (e.g. "1" and "1.0") add up
        if merged and merged[-1][0] == bound:
            merged[-1][1] += count
        else:
            merged.append([bound, count])
    highest = -math.inf
    for bucket in merged:  # counts must not decrease (scrapes of buckets are not atomic)
        if bucket[1] > highest:
            highest = bucket[1]
        elif bucket[1] < highest:
            bucket[1] = highest
    if len(merged) < 2:
        return math.nan
    observations = merged[-1][1]
    if observations == 0:
        return math.nan
    rank = q * observations
    b = next((i for i in range(len(merged) - 1) if merged[i][1] >= rank), len(merged) - 1)
    if b == len(merged) - 1:
        return merged[-2][0]
    if b == 0 and merged[0][0] <= 0:
        return merged[0][0]
    start, end, count = 0.0, merged[b][0], merged[b][1]
    if b > 0:
        start = merged[b - 1][0]
        count -= merged[b - 1][1]
        rank -= merged[b - 1][1]
    return start + (end - start) * (rank / count)
