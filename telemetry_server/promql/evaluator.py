"""Evaluates the expression tree at one timestamp over samples fetched beforehand: Prometheus 2.42's semantics."""

from __future__ import annotations

import math
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from telemetry_server.promql import ast, functions
from telemetry_server.promql.errors import BadData, Execution
from telemetry_server.promql.formatting import format_value
from telemetry_server.promql.matching import compile_regex
from telemetry_server.promql.source import RawSeries

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")  # a fixed pattern: Python's re cannot backtrack badly here
LOOKBACK_MS = 5 * 60 * 1000  # an instant selector takes the newest sample at most this old (staleness)
NAME = "__name__"

Labels = dict[str, str]
Sample = tuple[Labels, float]
Vector = list[Sample]


@dataclass(frozen=True, slots=True)
class Window:
    """One series' samples inside a range selector's window."""

    labels: Labels
    times: Sequence[int]
    values: Sequence[float]


@dataclass(frozen=True, slots=True)
class Matrix:
    series: list[Window]


Value = float | str | Vector | Matrix


def label_key(labels: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def without_name(labels: Mapping[str, str]) -> Labels:
    return {key: value for key, value in labels.items() if key != NAME}


def selector_windows(node: ast.Expr, start_ms: int, end_ms: int) -> Iterator[tuple[ast.VectorSelector, int, int]]:
    """Each selector of the tree with the time span, [first, last] ms, its evaluations between start and end read."""
    if isinstance(node, ast.MatrixSelector):
        sel = node.selector
        yield sel, start_ms - sel.offset_ms - node.range_ms, end_ms - sel.offset_ms
    elif isinstance(node, ast.VectorSelector):
        yield node, start_ms - node.offset_ms - LOOKBACK_MS, end_ms - node.offset_ms
    elif isinstance(node, ast.Call):
        for arg in node.args:
            yield from selector_windows(arg, start_ms, end_ms)
    elif isinstance(node, ast.Aggregate):
        yield from selector_windows(node.expr, start_ms, end_ms)
        if node.param is not None:
            yield from selector_windows(node.param, start_ms, end_ms)
    elif isinstance(node, ast.Binary):
        yield from selector_windows(node.lhs, start_ms, end_ms)
        yield from selector_windows(node.rhs, start_ms, end_ms)
    elif isinstance(node, ast.Negation):
        yield from selector_windows(node.expr, start_ms, end_ms)


def type_name(value: Value) -> str:
    if isinstance(value, float):
        return "scalar"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Matrix):
        return "range vector"
    return "instant vector"


class Evaluator:
    def __init__(self, data: Mapping[ast.VectorSelector, list[RawSeries]]) -> None:
        self._data = data

    def evaluate(self, node: ast.Expr, t: int) -> Value:
        if isinstance(node, ast.NumberLiteral):
            return node.value
        if isinstance(node, ast.StringLiteral):
            return node.value
        if isinstance(node, ast.VectorSelector):
            return self._instant(node, t)
        if isinstance(node, ast.MatrixSelector):
            return self._range(node, t)
        if isinstance(node, ast.Negation):
            operand = self.evaluate(node.expr, t)
            if isinstance(operand, float):
                return -operand
            return _unique([(without_name(labels), -value) for labels, value in self._vector(operand)])
        if isinstance(node, ast.Call):
            return self._call(node, t)
        if isinstance(node, ast.Aggregate):
            return self._aggregate(node, t)
        return self._binary(node, t)

    # -- selectors

    def _instant(self, node: ast.VectorSelector, t: int) -> Vector:
        at = t - node.offset_ms
        out: Vector = []
        for series in self._data[node]:
            i = bisect_right(series.timestamps, at) - 1
            if i >= 0 and series.timestamps[i] >= at - LOOKBACK_MS:
                out.append((series.labels, float(series.values[i])))
        return out

    def _range(self, node: ast.MatrixSelector, t: int) -> Matrix:
        end = t - node.selector.offset_ms
        start = end - node.range_ms
        out: list[Window] = []
        for series in self._data[node.selector]:
            times = series.timestamps
            lo, hi = bisect_left(times, start), bisect_right(times, end)
            if lo < hi:
                out.append(Window(series.labels, times[lo:hi], series.values[lo:hi]))
        return Matrix(out)

    def _vector(self, value: Value) -> Vector:
        if isinstance(value, list):
            return value
        raise BadData(f"expected an instant vector, got a {type_name(value)}")

    def _scalar(self, value: Value) -> float:
        if isinstance(value, float):
            return value
        raise BadData(f"expected a scalar, got a {type_name(value)}")

    # -- functions

    def _call(self, node: ast.Call, t: int) -> Value:
        name, args = node.name, node.args
        if name == "time":
            return t / 1000
        if name in ("rate", "increase", "delta"):
            return self._rate(args[0], t, counter=name != "delta", per_second=name == "rate")
        if name in ("irate", "idelta"):
            return self._over_windows(
                args[0], t, lambda w: functions.instant_change(w.times, w.values, per_second=name == "irate")
            )
        if name == "quantile_over_time":
            q = self._scalar(self.evaluate(args[0], t))
            return self._over_windows(args[1], t, lambda w: functions.quantile(q, w.values))
        if name in functions.OVER_TIME:
            fold = functions.OVER_TIME[name]
            return self._over_windows(args[0], t, lambda w: fold(w.values), keep_name=name == "last_over_time")
        if name == "vector":
            return [({}, self._scalar(self.evaluate(args[0], t)))]
        if name == "scalar":
            vector = self._vector(self.evaluate(args[0], t))
            return vector[0][1] if len(vector) == 1 else math.nan
        if name == "histogram_quantile":
            q = self._scalar(self.evaluate(args[0], t))
            return self._histogram_quantile(q, self._vector(self.evaluate(args[1], t)))
        if name == "label_replace":
            strings = [self.evaluate(arg, t) for arg in args[1:]]
            return _label_replace(self._vector(self.evaluate(args[0], t)), *(str(s) for s in strings))
        vector = self._vector(self.evaluate(args[0], t))
        if name == "abs":
            return _apply(vector, abs)
        if name == "ceil":
            return _apply(vector, functions.go_ceil)
        if name == "floor":
            return _apply(vector, functions.go_floor)
        if name == "round":
            to_nearest = self._scalar(self.evaluate(args[1], t)) if len(args) > 1 else 1.0
            return _apply(vector, lambda v: functions.go_round(v, to_nearest))
        bound = self._scalar(self.evaluate(args[1], t))
        if name == "clamp_min":
            return _apply(vector, lambda v: functions.go_max(bound, v))
        if name == "clamp_max":
            return _apply(vector, lambda v: functions.go_min(bound, v))
        raise BadData(f"unsupported PromQL function: {name}()")

    def _windows(self, arg: ast.Expr, t: int) -> Matrix:
        value = self.evaluate(arg, t)
        if not isinstance(value, Matrix):
            raise BadData(f"expected a range vector, got a {type_name(value)}")
        return value

    def _over_windows(
        self, arg: ast.Expr, t: int, fold: Callable[[Window], float | None], keep_name: bool = False
    ) -> Vector:
        out: Vector = []
        for window in self._windows(arg, t).series:
            value = fold(window)
            if value is not None:
                out.append((window.labels if keep_name else without_name(window.labels), value))
        return out if keep_name else _unique(out)

    def _rate(self, arg: ast.Expr, t: int, counter: bool, per_second: bool) -> Vector:
        if not isinstance(arg, ast.MatrixSelector):
            raise BadData("expected a range vector selector")
        end = t - arg.selector.offset_ms
        start = end - arg.range_ms
        return self._over_windows(
            arg, t, lambda w: functions.extrapolated_rate(w.times, w.values, start, end, counter, per_second)
        )

    def _histogram_quantile(self, q: float, vector: Vector) -> Vector:
        groups: dict[tuple[tuple[str, str], ...], tuple[Labels, list[tuple[float, float]]]] = {}
        for labels, value in vector:
            try:
                bound = float(labels["le"])
            except (KeyError, ValueError):
                continue  # not a bucket: Prometheus skips it
            rest = {k: v for k, v in labels.items() if k not in (NAME, "le")}
            groups.setdefault(label_key(rest), (rest, []))[1].append((bound, value))
        return [(labels, functions.bucket_quantile(q, buckets)) for labels, buckets in groups.values()]

    # -- aggregations

    def _aggregate(self, node: ast.Aggregate, t: int) -> Vector:
        vector = self._vector(self.evaluate(node.expr, t))
        # The parser has checked the parameter's type: a number for topk, bottomk and quantile, a string for
        # count_values.
        param = self.evaluate(node.param, t) if node.param is not None else math.nan
        if node.op == "count_values" and not _LABEL_NAME.fullmatch(str(param)):
            raise Execution(f'invalid label name "{param}"')  # even over an empty vector, as Prometheus
        groups: dict[tuple[tuple[str, str], ...], tuple[Labels, Vector]] = {}
        for sample in vector:
            labels = sample[0]
            if node.without:
                dropped = {*node.labels, NAME}
                grouping = {k: v for k, v in labels.items() if k not in dropped}
            else:
                grouping = {k: labels[k] for k in node.labels if labels.get(k, "") != ""}
            groups.setdefault(label_key(grouping), (grouping, []))[1].append(sample)
        op = node.op
        out: Vector = []
        for grouping, members in groups.values():
            values = [value for _, value in members]
            if op == "sum":
                out.append((grouping, functions.total(values)))
            elif op == "avg":
                out.append((grouping, functions.average(values)))
            elif op == "min":
                out.append((grouping, functions.minimum(values)))
            elif op == "max":
                out.append((grouping, functions.maximum(values)))
            elif op == "count":
                out.append((grouping, float(len(values))))
            elif op == "quantile":
                out.append((grouping, functions.quantile(self._scalar(param), values)))
            elif op in ("topk", "bottomk"):
                out.extend(_top(members, self._scalar(param), largest=op == "topk"))
            elif op == "count_values":
                out.extend(_count_values(grouping, values, str(param)))
        return _unique(out)

    # -- binary operators

    def _binary(self, node: ast.Binary, t: int) -> Value:
        lhs, rhs = self.evaluate(node.lhs, t), self.evaluate(node.rhs, t)
        op = node.op
        if isinstance(lhs, float) and isinstance(rhs, float):
            if op in functions.COMPARISON:
                return 1.0 if functions.COMPARISON[op](lhs, rhs) else 0.0
            return functions.ARITHMETIC[op](lhs, rhs)
        if isinstance(rhs, float):
            return _unique(_vector_scalar(op, self._vector(lhs), rhs, swap=False, return_bool=node.return_bool))
        if isinstance(lhs, float):
            return _unique(_vector_scalar(op, self._vector(rhs), lhs, swap=True, return_bool=node.return_bool))
        left, right = self._vector(lhs), self._vector(rhs)
        if op in ("and", "or", "unless"):
            return _set_operation(op, left, right, node.matching)
        return _unique(_vector_vector(op, left, right, node.matching, node.return_bool))


def _apply(vector: Vector, fn: Callable[[float], float]) -> Vector:
    return _unique([(without_name(labels), fn(value)) for labels, value in vector])


def _unique(vector: Vector) -> Vector:
    seen: set[tuple[tuple[str, str], ...]] = set()
    for labels, _ in vector:
        key = label_key(labels)
        if key in seen:
            raise Execution("vector cannot contain metrics with the same labelset")
        seen.add(key)
    return vector


def _top(members: Vector, k_value: float, largest: bool) -> Vector:
    """topk/bottomk by Prometheus' own heap of k, so that ties keep the same members as Prometheus': the series
    arriving first stays, and which one a later larger value evicts follows Go's container/heap."""
    if math.isnan(k_value) or k_value < 1:
        return []
    k = int(min(k_value, len(members)))

    def evicts_first(a: float, b: float) -> bool:  # the heap's order: what leaves first on top, NaN first
        return math.isnan(a) or (a < b if largest else a > b)

    heap: Vector = []
    for sample in members:
        value = sample[1]
        if len(heap) < k:
            heap.append(sample)
            _heap_up(heap, len(heap) - 1, evicts_first)
        elif evicts_first(heap[0][1], value) and not math.isnan(value):
            heap[0] = sample
            _heap_down(heap, 0, evicts_first)

    # NaN ranks last for both topk and bottomk.
    def rank(sample: Sample) -> tuple[int, float]:
        value = sample[1]
        if math.isnan(value):
            return (1, 0.0)
        return (0, -value if largest else value)

    return sorted(heap, key=rank)


def _heap_up(heap: Vector, j: int, less: Callable[[float, float], bool]) -> None:
    while j > 0:
        parent = (j - 1) // 2
        if not less(heap[j][1], heap[parent][1]):
            break
        heap[parent], heap[j] = heap[j], heap[parent]
        j = parent


def _heap_down(heap: Vector, i: int, less: Callable[[float, float], bool]) -> None:
    n = len(heap)
    while (child := 2 * i + 1) < n:
        if child + 1 < n and less(heap[child + 1][1], heap[child][1]):
            child += 1
        if not less(heap[child][1], heap[i][1]):
            break
        heap[i], heap[child] = heap[child], heap[i]
        i = child


def _count_values(grouping: Labels, values: Sequence[float], label: str) -> Vector:
    counts: dict[str, int] = {}
    for value in values:
        text = format_value(value)
        counts[text] = counts.get(text, 0) + 1
    return [({**grouping, label: text}, float(count)) for text, count in counts.items()]


def _label_replace(vector: Vector, dst: str, replacement: str, src: str, pattern: str) -> Vector:
    # Prometheus finds these while evaluating, so they are 422 execution errors, not bad_data.
    if not _LABEL_NAME.fullmatch(dst):
        raise Execution(f"invalid destination label name in label_replace(): {dst}")
    try:
        regex = compile_regex(pattern)
    except BadData as exc:
        raise Execution(f"invalid regular expression in label_replace(): {pattern}") from exc
    out: Vector = []
    for labels, value in vector:
        match = regex.fullmatch(labels.get(src, ""))
        if match is None:
            out.append((labels, value))
            continue
        result = _expand(replacement, match)
        changed = {k: v for k, v in labels.items() if k != dst}
        if result:
            changed[dst] = result
        out.append((changed, value))
    return _unique(out)


def _expand(template: str, match: object) -> str:
    """Go's Regexp.Expand: $1, ${1}, $name, ${name}, $$; a missing group is empty."""
    group = match.group  # type: ignore[attr-defined]
    out: list[str] = []
    i = 0
    while i < len(template):
        char = template[i]
        if char != "$" or i + 1 == len(template):
            out.append(char)
            i += 1
            continue
        nxt = template[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
            continue
        if nxt == "{":
            close = template.find("}", i + 2)
            name = template[i + 2 : close] if close > 0 else ""
            end = close + 1
        else:
            end = i + 1
            while end < len(template) and (template[end].isalnum() or template[end] == "_"):
                end += 1
            name = template[i + 1 : end]
        if not name or not all(c.isalnum() or c == "_" for c in name):
            out.append(char)  # not a reference: a literal $
            i += 1
            continue
        try:
            value = group(int(name)) if name.isdigit() else group(name)
        except IndexError:  # re2's answer to an unknown group number or name
            value = None
        out.append(value or "")
        i = end
    return "".join(out)


def _vector_scalar(op: str, vector: Vector, scalar: float, swap: bool, return_bool: bool) -> Vector:
    out: Vector = []
    compare = functions.COMPARISON.get(op)
    for labels, element in vector:
        left, right = (scalar, element) if swap else (element, scalar)
        if compare is not None:
            keep = compare(left, right)
            if return_bool:
                out.append((without_name(labels), 1.0 if keep else 0.0))
            elif keep:
                out.append((labels, element))
        else:
            out.append((without_name(labels), functions.ARITHMETIC[op](left, right)))
    return out


def _signature(matching: ast.VectorMatching) -> Callable[[Labels], tuple[tuple[str, str], ...]]:
    names = frozenset(matching.labels)
    if matching.on:
        ordered = sorted(names)
        return lambda labels: tuple((name, labels.get(name, "")) for name in ordered)
    return lambda labels: tuple(sorted((k, v) for k, v in labels.items() if k not in names and k != NAME))


def _set_operation(op: str, left: Vector, right: Vector, matching: ast.VectorMatching) -> Vector:
    signature = _signature(matching)
    if op == "or":
        seen = {signature(labels) for labels, _ in left}
        return left + [sample for sample in right if signature(sample[0]) not in seen]
    right_sigs = {signature(labels) for labels, _ in right}
    wanted = op == "and"
    return [sample for sample in left if (signature(sample[0]) in right_sigs) == wanted]


def _vector_vector(op: str, left: Vector, right: Vector, matching: ast.VectorMatching, return_bool: bool) -> Vector:
    card = matching.cardinality
    if card == "many-to-many":
        raise BadData(f"many-to-many matching is only allowed for and, or and unless, not {op}")
    signature = _signature(matching)
    many, one = (right, left) if card == "one-to-many" else (left, right)
    one_side = "left" if card == "one-to-many" else "right"
    by_sig: dict[tuple[tuple[str, str], ...], Sample] = {}
    for sample in one:
        sig = signature(sample[0])
        if sig in by_sig:
            raise Execution(
                f"found duplicate series for the match group {dict(sig)} on the {one_side} hand-side of the "
                "operation; many-to-many matching not allowed: matching labels must be unique on one side"
            )
        by_sig[sig] = sample
    compare = functions.COMPARISON.get(op)
    drop_name = op in functions.ARITHMETIC or return_bool
    matched: dict[tuple[tuple[str, str], ...], set[tuple[tuple[str, str], ...]]] = {}
    out: Vector = []
    for labels, value in many:
        sig = signature(labels)
        partner = by_sig.get(sig)
        if partner is None:
            continue
        lv, rv = (partner[1], value) if card == "one-to-many" else (value, partner[1])
        if compare is not None:
            keep = compare(lv, rv)
            if return_bool:
                result, keep = (1.0 if keep else 0.0), True
            else:
                result = lv
            if not keep:
                continue
        else:
            result = functions.ARITHMETIC[op](lv, rv)
        metric = _result_labels(labels, partner[0], matching, drop_name)
        if card == "one-to-one":
            if sig in matched:
                raise Execution(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
                )
            matched[sig] = set()
        else:
            inserted = matched.setdefault(sig, set())
            key = label_key(metric)
            if key in inserted:
                raise Execution("multiple matches for labels: grouping labels must ensure unique matches")
            inserted.add(key)
        out.append((metric, result))
    return out


def _result_labels(labels: Labels, one: Labels, matching: ast.VectorMatching, drop_name: bool) -> Labels:
    out = dict(labels)
    if drop_name:
        out.pop(NAME, None)
    if matching.cardinality == "one-to-one":
        if matching.on:
            out = {k: v for k, v in out.items() if k in matching.labels}
        else:
            for name in matching.labels:
                out.pop(name, None)
    for name in matching.include:
        if one.get(name, ""):
            out[name] = one[name]
        else:
            out.pop(name, None)
    return out
