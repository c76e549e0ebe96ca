"""The PromQL engine's edge cases on hand-made series (Prometheus' own answers are checked in the integration test
against Prometheus 2.42): lookback, window edges, extrapolation, counter resets, matching errors, limits."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence

import pytest

from telemetry_server.promql.engine import (
    BadData,
    Execution,
    QueryLimits,
    QueryResult,
    Timeout,
    TooLarge,
    instant_query,
    range_query,
)
from telemetry_server.promql.formatting import format_time, format_value
from telemetry_server.promql.matching import compile_regex, labels_predicate
from telemetry_server.promql.memory_source import MemorySeriesSource
from telemetry_server.promql.source import Matcher, RawSeries

LIMITS = QueryLimits()


def series(name: str, points: Sequence[tuple[int, float]], **labels: str) -> RawSeries:
    return RawSeries({"__name__": name, **labels}, [t for t, _ in points], [v for _, v in points])


def instant(query: str, t_ms: int, *data: RawSeries, limits: QueryLimits = LIMITS) -> QueryResult:
    return asyncio.run(instant_query(query, t_ms, MemorySeriesSource(data), limits))


def values(result: QueryResult) -> dict[str, str]:
    return {",".join(f"{k}={v}" for k, v in sorted(r["metric"].items())): r["value"][1] for r in result.result}


def test_an_instant_selector_looks_back_five_minutes_inclusive() -> None:
    gauge = series("g", [(0, 1.0), (10_000, 2.0)])
    assert values(instant("g", 310_000, gauge)) == {"__name__=g": "2"}
    assert instant("g", 310_001, gauge).result == []
    assert values(instant("g", 5_000, gauge)) == {"__name__=g": "1"}  # the newest sample not after t


def test_a_range_window_holds_both_edges() -> None:
    gauge = series("g", [(0, 1.0), (30_000, 2.0), (60_000, 4.0)])
    assert values(instant("count_over_time(g[60s])", 60_000, gauge)) == {"": "3"}
    assert values(instant("count_over_time(g[59999ms])", 60_000, gauge)) == {"": "2"}


def test_increase_adds_across_a_counter_reset_and_extrapolates_to_the_window() -> None:
    counter = series("c", [(15_000, 10.0), (30_000, 20.0), (45_000, 5.0), (60_000, 15.0)])
    # 10 + (20 - 10 reset → +20) ... raw increase 25 over 45 s of samples; the window starts 15 s before the
    # first sample (< 1.1 average gaps), but the counter would hit zero 18 s before it: extrapolate 15 s → 60 s.
    result = values(instant("increase(c[60s])", 60_000, counter))
    assert float(result[""]) == pytest.approx(25 * 60 / 45)
    assert float(values(instant("rate(c[60s])", 60_000, counter))[""]) == pytest.approx(25 / 45)


def test_irate_after_a_reset_takes_the_last_value() -> None:
    counter = series("c", [(0, 50.0), (10_000, 4.0)])
    assert values(instant("irate(c[1m])", 10_000, counter)) == {"": "0.4"}
    assert values(instant("idelta(c[1m])", 10_000, counter)) == {"": "-46"}


def test_rate_needs_two_samples() -> None:
    assert instant("rate(c[1m])", 10_000, series("c", [(0, 1.0)])).result == []


def test_range_steps_start_at_start_and_stop_at_end() -> None:
    gauge = series("g", [(0, 1.0)])
    result = asyncio.run(range_query("g", 0, 100_000, 30_000, MemorySeriesSource([gauge]), LIMITS))
    assert result.result_type == "matrix"
    assert [p[0] for p in result.result[0]["values"]] == [0, 30, 60, 90]


def test_topk_ranks_nan_last_and_keeps_all_labels() -> None:
    data = [series("g", [(0, v)], i=str(i)) for i, v in enumerate([math.nan, 3.0, 7.0])]
    result = instant("topk(2, g)", 0, *data)
    assert [(r["metric"]["i"], r["value"][1]) for r in result.result] == [("2", "7"), ("1", "3")]
    assert [r["metric"]["i"] for r in instant("bottomk(3, g)", 0, *data).result] == ["1", "2", "0"]


def test_topk_ties_keep_the_members_prometheus_heap_keeps() -> None:
    # Fed in label order: 0 and 1 fill the heap of 2, then 2 evicts the heap's top, the first of the tied.
    data = [series("g", [(0, v)], i=str(i)) for i, v in enumerate([1.0, 1.0, 2.0])]
    assert [r["metric"]["i"] for r in instant("topk(2, g)", 0, *reversed(data)).result] == ["2", "1"]


def test_quantile_interpolates_between_ranks() -> None:
    data = [series("g", [(0, float(v))], i=str(v)) for v in (1, 2, 3, 4)]
    assert values(instant("quantile(0.5, g)", 0, *data)) == {"": "2.5"}
    assert values(instant("quantile(2, g)", 0, *data)) == {"": "+Inf"}


def test_histogram_quantile_needs_an_inf_bucket() -> None:
    buckets = [series("h_bucket", [(0, c)], le=le) for le, c in (("1", 5.0), ("2", 10.0))]
    assert values(instant("histogram_quantile(0.5, h_bucket)", 0, *buckets)) == {"": "NaN"}
    buckets.append(series("h_bucket", [(0, 10.0)], le="+Inf"))
    assert values(instant("histogram_quantile(0.5, h_bucket)", 0, *buckets)) == {"": "1"}
    assert values(instant("histogram_quantile(0.75, h_bucket)", 0, *buckets)) == {"": "1.5"}


def test_label_replace_expands_groups_as_go_does() -> None:
    gauge = series("g", [(0, 1.0)], host="web-7")
    result = instant('label_replace(g, "n", "$1:${2}x:$3:$$", "host", "(\\\\w+)-(\\\\d+)")', 0, gauge)
    assert result.result[0]["metric"]["n"] == "web:7x::$"
    unchanged = instant('label_replace(g, "n", "$1", "host", "db-.*")', 0, gauge)
    assert "n" not in unchanged.result[0]["metric"]
    with pytest.raises(Execution, match="invalid destination label name"):
        instant('label_replace(g, "né", "x", "host", ".*")', 0, gauge)
    with pytest.raises(Execution, match="invalid regular expression"):
        instant('label_replace(g, "n", "x", "host", "(?=x)")', 0, gauge)


def test_arithmetic_follows_go_floats() -> None:
    gauge = series("g", [(0, 2.0)])
    assert values(instant("g / 0", 0, gauge)) == {"": "+Inf"}
    assert values(instant("-g % 0", 0, gauge)) == {"": "NaN"}
    assert values(instant("(g - 2) ^ -1", 0, gauge)) == {"": "+Inf"}
    assert instant("10 ^ 400", 0).result == [0, "+Inf"]


def test_one_to_one_matching_refuses_many_matches() -> None:
    data = [
        series("a", [(0, 1.0)], x="1", y="1"),
        series("a", [(0, 1.0)], x="1", y="2"),
        series("b", [(0, 1.0)], x="1"),
    ]
    with pytest.raises(Execution, match="many-to-one matching must be explicit"):
        instant("a + on(x) b", 0, *data)
    assert len(instant("a + on(x) group_left b", 0, *data).result) == 2
    with pytest.raises(Execution, match="duplicate series"):
        instant("b + on(x) group_right a", 0, *data[:2], series("b", [(0, 1.0)], x="1", z="1"), data[2])


def test_a_function_that_makes_two_series_alike_is_an_execution_error() -> None:
    data = [series("a", [(0, 1.0), (1, 2.0)]), series("b", [(0, 1.0), (1, 2.0)])]
    with pytest.raises(Execution, match="same labelset"):
        instant('abs({__name__=~"a|b"})', 0, *data)
    with pytest.raises(Execution, match="same labelset"):
        instant('rate({__name__=~"a|b"}[5m])', 1, *data)
    for query in ('-{__name__=~"a|b"}', '{__name__=~"a|b"} * 2', '{__name__=~"a|b"} > bool 2'):
        with pytest.raises(Execution, match="same labelset"):
            instant(query, 1, *data)
    assert len(instant('{__name__=~"a|b"} > 0', 1, *data).result) == 2  # a filter keeps the names


def test_limits_on_series_points_and_time() -> None:
    data = [series("g", [(t, 1.0) for t in range(0, 10_000, 1000)], i=str(i)) for i in range(3)]
    with pytest.raises(TooLarge, match="series"):
        instant("g", 10_000, *data, limits=QueryLimits(max_series=2))
    with pytest.raises(TooLarge, match="points"):
        instant("g", 10_000, *data, limits=QueryLimits(max_points=20))

    class SlowSource:
        async def select(self, matchers: Sequence[Matcher], start_ms: int, end_ms: int) -> list[RawSeries]:
            await asyncio.sleep(10)
            return []

    with pytest.raises(Timeout):
        asyncio.run(instant_query("g", 0, SlowSource(), QueryLimits(timeout_s=0.01)))


@pytest.mark.parametrize(
    ("query", "start", "end", "step", "message"),
    [
        ("g", 0, 10, 0, "step"),
        ("g", 10, 0, 1, "end timestamp"),
        ("g", 0, 11_000_000, 1, "maximum resolution"),
        ("g[1m]", 0, 10, 1, "range vector"),
        ('"text"', 0, 10, 1, "string"),
    ],
)
def test_range_queries_refuse_what_prometheus_refuses(
    query: str, start: int, end: int, step: int, message: str
) -> None:
    with pytest.raises(BadData, match=message):
        asyncio.run(range_query(query, start, end, step, MemorySeriesSource([]), LIMITS))


def test_results_take_prometheus_shapes() -> None:
    gauge = series("g", [(0, 1.0), (1000, 2.0)])
    assert instant("g[5s]", 1500, gauge).result == [{"metric": {"__name__": "g"}, "values": [[0, "1"], [1, "2"]]}]
    assert (instant("time()", 1500).result_type, instant("time()", 1500).result) == ("scalar", [1.5, "1.5"])
    assert instant('"hi"', 0).result == [0, "hi"]
    unordered = series("g", [(0, 1.0)], zone="z", app="a")
    assert list(instant("g", 0, unordered).result[0]["metric"]) == ["__name__", "app", "zone"]  # by name, as Prometheus


@pytest.mark.parametrize(
    ("value", "text"),
    [(1.0, "1"), (0.1, "0.1"), (-0.0, "-0"), (1e21, "1000000000000000000000"), (1.5e-7, "0.00000015"),
     (math.inf, "+Inf"), (-math.inf, "-Inf"), (math.nan, "NaN"), (123456.789, "123456.789")],
)  # fmt: skip
def test_values_are_written_as_go_writes_them(value: float, text: str) -> None:
    assert format_value(value) == text


def test_timestamps_are_seconds_whole_when_they_can_be() -> None:
    assert (format_time(1_700_000_000_000), format_time(1_700_000_000_250)) == (1_700_000_000, 1_700_000_000.25)


def test_regex_matchers_are_anchored_and_absent_labels_are_empty() -> None:
    matches = labels_predicate([Matcher("host", "=~", "h1|h2"), Matcher("dc", "=", "")])
    assert matches({"host": "h1"})
    assert not matches({"host": "h12"})
    assert not matches({"host": "h1", "dc": "x"})


def test_backtracking_regexes_match_in_linear_time_and_bad_ones_are_bad_data() -> None:
    # Python's re needs about 2^30 steps for this; RE2 does not backtrack.
    assert compile_regex("(a+)+").fullmatch("a" * 30 + "b") is None
    with pytest.raises(BadData, match="invalid regex"):
        compile_regex("(?=lookahead)")
