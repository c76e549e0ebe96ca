"""The parser's tree mapped to the evaluator's: selectors, modifiers, and refusals that name the unsupported part."""

from __future__ import annotations

import pytest

from telemetry_server.promql import ast
from telemetry_server.promql.errors import BadData
from telemetry_server.promql.parse import parse_query
from telemetry_server.promql.source import Matcher


def test_a_selector_puts_its_name_first_as_a_matcher_and_keeps_the_others() -> None:
    tree = parse_query('cpu{host=~"h.*", dc!="x"} offset 1m30s')
    assert isinstance(tree, ast.VectorSelector)
    assert tree.matchers == (Matcher("__name__", "=", "cpu"), Matcher("host", "=~", "h.*"), Matcher("dc", "!=", "x"))
    assert tree.offset_ms == 90_000


def test_a_range_selector_keeps_its_range_in_milliseconds() -> None:
    tree = parse_query("rate(x[5m] offset 1h)")
    assert isinstance(tree, ast.Call)
    assert tree.name == "rate"
    (arg,) = tree.args
    assert isinstance(arg, ast.MatrixSelector)
    assert (arg.range_ms, arg.selector.offset_ms) == (300_000, 3_600_000)


def test_aggregations_keep_their_grouping_and_parameter() -> None:
    tree = parse_query("topk without (host) (3, (x))")
    assert isinstance(tree, ast.Aggregate)
    assert (tree.op, tree.labels, tree.without) == ("topk", ("host",), True)
    assert isinstance(tree.param, ast.NumberLiteral)
    assert tree.param.value == 3
    assert isinstance(tree.expr, ast.VectorSelector)  # parentheses leave no node


def test_binary_modifiers_map_to_vector_matching() -> None:
    tree = parse_query("a / on(job) group_left(version) b")
    assert isinstance(tree, ast.Binary)
    assert tree.matching.cardinality == "many-to-one"
    assert (tree.matching.on, tree.matching.labels, tree.matching.include) == (True, ("job",), ("version",))
    plain = parse_query("a > bool ignoring(code) b")
    assert isinstance(plain, ast.Binary)
    assert (plain.return_bool, plain.matching.on, plain.matching.labels) == (True, False, ("code",))
    assert parse_query("a and b").matching.cardinality == "many-to-many"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("stddev(x)", "stddev"),
        ("absent(x)", "absent()"),
        ("rate(x[5m:1m])", "subqueries"),
        ("x @ 100", "@ modifier"),
        ("sort(x)", "sort()"),
        ("x atan2 y", "atan2"),
        ('x{a="b" or c="d"}', "`or`"),
    ],
)
def test_what_is_outside_the_subset_is_bad_data_naming_it(query: str, named: str) -> None:
    with pytest.raises(BadData, match="unsupported") as caught:
        parse_query(query)
    assert named in caught.value.detail


@pytest.mark.parametrize("query", ["sum(", "x{", "1 > 2", 'x{a=~"("}', "rate(x)", ""])
def test_invalid_promql_is_bad_data(query: str) -> None:
    with pytest.raises(BadData, match="invalid PromQL"):
        parse_query(query)
