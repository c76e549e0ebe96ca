"""The evaluator's expression tree: the supported subset of PromQL, as typed values mapped from the parser's AST."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from telemetry_server.promql.source import Matcher

Cardinality = Literal["one-to-one", "many-to-one", "one-to-many", "many-to-many"]

# Nodes compare by identity (eq=False): the evaluator keys the samples it fetched for a selector by its node.


@dataclass(frozen=True, eq=False, slots=True)
class NumberLiteral:
    value: float


@dataclass(frozen=True, eq=False, slots=True)
class StringLiteral:
    value: str


@dataclass(frozen=True, eq=False, slots=True)
class VectorSelector:
    matchers: tuple[Matcher, ...]
    offset_ms: int


@dataclass(frozen=True, eq=False, slots=True)
class MatrixSelector:
    selector: VectorSelector
    range_ms: int


@dataclass(frozen=True, eq=False, slots=True)
class Call:
    name: str
    args: tuple[Expr, ...]


@dataclass(frozen=True, eq=False, slots=True)
class Aggregate:
    op: str
    expr: Expr
    param: Expr | None
    labels: tuple[str, ...]
    without: bool


@dataclass(frozen=True, eq=False, slots=True)
class VectorMatching:
    cardinality: Cardinality
    labels: tuple[str, ...]
    on: bool  # True: match on `labels` only; False: ignoring `labels` (and __name__)
    include: tuple[str, ...]  # group_left/group_right's labels taken from the "one" side


@dataclass(frozen=True, eq=False, slots=True)
class Binary:
    op: str
    lhs: Expr
    rhs: Expr
    return_bool: bool
    matching: VectorMatching


@dataclass(frozen=True, eq=False, slots=True)
class Negation:
    expr: Expr


Expr = NumberLiteral | StringLiteral | VectorSelector | MatrixSelector | Call | Aggregate | Binary | Negation
