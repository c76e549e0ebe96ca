"""PromQL text to the evaluator's tree, via the `promql-parser` package; anything outside the subset is BadData."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, TypeVar

import promql_parser as pp

from telemetry_server.promql import ast
from telemetry_server.promql.errors import BadData
from telemetry_server.promql.source import Matcher, MatchOp

# Function name -> the argument kinds the evaluator accepts ("v" instant vector, "m" range vector, "s" scalar,
# "str" string); the parser has checked arity and types already, this is the subset's gate.
FUNCTIONS: frozenset[str] = frozenset(
    {
        "rate", "irate", "increase", "delta", "idelta",
        "avg_over_time", "min_over_time", "max_over_time", "sum_over_time", "count_over_time",
        "last_over_time", "quantile_over_time",
        "abs", "ceil", "floor", "round", "clamp_min", "clamp_max",
        "histogram_quantile", "label_replace", "time", "vector", "scalar",
    }
)  # fmt: skip
AGGREGATIONS = frozenset({"sum", "avg", "min", "max", "count", "topk", "bottomk", "quantile", "count_values"})
BINARY_OPS = frozenset({"+", "-", "*", "/", "%", "^", "==", "!=", ">", "<", ">=", "<=", "and", "or", "unless"})

T = TypeVar("T")

# The binding's enums are not hashable: looked up by equality.
_MATCH_OPS: list[tuple[Any, MatchOp]] = [
    (pp.MatchOp.Equal, "="),
    (pp.MatchOp.NotEqual, "!="),
    (pp.MatchOp.Re, "=~"),
    (pp.MatchOp.NotRe, "!~"),
]
_CARDINALITY: list[tuple[Any, ast.Cardinality]] = [
    (pp.VectorMatchCardinality.OneToOne, "one-to-one"),
    (pp.VectorMatchCardinality.ManyToOne, "many-to-one"),
    (pp.VectorMatchCardinality.OneToMany, "one-to-many"),
    (pp.VectorMatchCardinality.ManyToMany, "many-to-many"),
]
_ONE_TO_ONE = ast.VectorMatching("one-to-one", (), on=False, include=())


def parse_query(text: str) -> ast.Expr:
    try:
        tree = pp.parse(text)
    except ValueError as exc:
        raise BadData(f"invalid PromQL: {exc}") from exc
    return _convert(tree)


def _lookup(table: list[tuple[Any, T]], key: Any) -> T:
    return next(value for candidate, value in table if candidate == key)


def _millis(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _convert(node: Any) -> ast.Expr:
    if isinstance(node, pp.ParenExpr):
        return _convert(node.expr)
    if isinstance(node, pp.NumberLiteral):
        return ast.NumberLiteral(float(node.val))
    if isinstance(node, pp.StringLiteral):
        return ast.StringLiteral(node.val)
    if isinstance(node, pp.VectorSelector):
        return _selector(node)
    if isinstance(node, pp.MatrixSelector):
        return ast.MatrixSelector(_selector(node.vector_selector), _millis(node.range))
    if isinstance(node, pp.UnaryExpr):
        return ast.Negation(_convert(node.expr))
    if isinstance(node, pp.Call):
        name = node.func.name
        if name not in FUNCTIONS:
            raise BadData(f"unsupported PromQL function: {name}()")
        return ast.Call(name, tuple(_convert(arg) for arg in node.args))
    if isinstance(node, pp.AggregateExpr):
        return _aggregate(node)
    if isinstance(node, pp.BinaryExpr):
        return _binary(node)
    if isinstance(node, pp.SubqueryExpr):
        raise BadData("unsupported PromQL: subqueries ([range:step])")
    raise BadData(f"unsupported PromQL expression: {node}")


def _selector(node: Any) -> ast.VectorSelector:
    if node.at is not None:
        raise BadData("unsupported PromQL: the @ modifier")
    if node.matchers.or_matchers:
        raise BadData("unsupported PromQL: `or` inside a selector's braces")
    matchers = [Matcher(m.name, _lookup(_MATCH_OPS, m.op), m.value) for m in node.matchers.matchers]
    if node.name is not None:
        matchers.insert(0, Matcher("__name__", "=", node.name))
    offset = _millis(node.offset) if node.offset is not None else 0
    return ast.VectorSelector(tuple(matchers), offset)


def _aggregate(node: Any) -> ast.Aggregate:
    op = str(node.op)
    if op not in AGGREGATIONS:
        raise BadData(f"unsupported PromQL aggregation: {op}")
    modifier = node.modifier
    labels = tuple(modifier.labels) if modifier is not None else ()
    without = modifier is not None and modifier.type == pp.AggModifierType.Without
    param = _convert(node.param) if node.param is not None else None
    return ast.Aggregate(op, _convert(node.expr), param, labels, without)


def _binary(node: Any) -> ast.Binary:
    op = str(node.op)
    if op not in BINARY_OPS:
        raise BadData(f"unsupported PromQL operator: {op}")
    modifier = node.modifier
    if modifier is None:
        matching = _ONE_TO_ONE
        return_bool = False
    else:
        fill = modifier.fill_values
        if fill is not None and (fill.lhs is not None or fill.rhs is not None):
            raise BadData("unsupported PromQL: fill() modifiers")
        return_bool = bool(modifier.return_bool)
        on = modifier.matching is not None and modifier.matching.type == pp.LabelModifierType.Include
        labels = tuple(modifier.matching.labels) if modifier.matching is not None else ()
        matching = ast.VectorMatching(
            _lookup(_CARDINALITY, modifier.card), labels, on=on, include=tuple(modifier.group_labels or ())
        )
    return ast.Binary(op, _convert(node.lhs), _convert(node.rhs), return_bool, matching)
