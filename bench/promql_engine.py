"""The PromQL engine, in-process: parse time, regex matching cost, and evaluation time of TSBS-shaped queries.

Run: `.venv/bin/python -m bench.promql_engine [--hosts 100] [--rounds 3]`. It prints µs per parse of typical
queries (promql-parser alone, and with our mapping to the evaluator's tree), ns per label-value match for
Python's re, google-re2 and our remembered RE2 matcher, and ms per query for TSBS's query shapes over an
in-memory source of `--hosts` series of 12 h at 10 s. The best of the rounds is kept. docs/promql.md cites it.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import time
from collections.abc import Callable
from functools import partial

import promql_parser

from telemetry_server.promql.engine import QueryLimits, instant_query, range_query
from telemetry_server.promql.matching import compile_regex, value_predicate
from telemetry_server.promql.memory_source import MemorySeriesSource
from telemetry_server.promql.parse import parse_query
from telemetry_server.promql.source import Matcher, RawSeries

TYPICAL = [
    "up",
    'rate(http_requests_total{job="api",code=~"5.."}[5m])',
    "sum by (job) (rate(http_requests_total[5m]))",
    "histogram_quantile(0.99, sum by (le, job) (rate(http_request_duration_seconds_bucket[5m])))",
    'max by (hostname) (cpu_usage_user{hostname=~"host_1|host_2|host_3"})',
    "node_temp * on(host) group_left(version) build_info > bool 20",
]
HOUR_MS = 3_600_000
END_MS = 1_700_000_000_000
TSBS_SHAPES = {
    # (query, range in hours, step): the shapes tsbs_run_queries_victoriametrics sends, for one metric.
    "single-groupby-1-1-1": ('max by (hostname) (cpu_usage_user{hostname=~"host_1"})', 1, 60_000),
    "single-groupby-5-1-12": (
        'max by (hostname) (cpu_usage_user{hostname=~"host_1|host_2|host_3|host_4|host_5"})',
        12,
        60_000,
    ),
    "cpu-max-all-8": (
        'max by (hostname) (max_over_time(cpu_usage_user{hostname=~"host_(1|2|3|4|5|6|7|8)"}[1h]))',
        8,
        HOUR_MS,
    ),
    "double-groupby-1": ("avg by (hostname) (avg_over_time(cpu_usage_user[1h]))", 12, HOUR_MS),
}


def best(work: Callable[[], object], rounds: int) -> float:
    fastest = float("inf")
    for _ in range(rounds):
        begun = time.perf_counter()
        work()
        fastest = min(fastest, time.perf_counter() - begun)
    return fastest


def repeat(fn: Callable[[str], object], text: str, n: int) -> None:
    for _ in range(n):
        fn(text)


def parse_figures(rounds: int) -> dict[str, list[float]]:
    n = 2000
    out = {}
    for query in TYPICAL:
        alone = best(partial(repeat, promql_parser.parse, query, n), rounds) / n * 1e6
        mapped = best(partial(repeat, parse_query, query, n), rounds) / n * 1e6
        out[query] = [round(alone, 1), round(mapped, 1)]
    return out


def regex_figures(rounds: int) -> dict[str, float]:
    values = [f"host_{i}" for i in range(1000)] * 10
    pattern = "host_(1|2|3|4|5)"
    python_re = re.compile(f"^(?:{pattern})$")
    rex = compile_regex(pattern)
    remembered = value_predicate(Matcher("hostname", "=~", pattern))
    n = len(values)
    return {
        "re.fullmatch": round(best(lambda: [python_re.fullmatch(v) for v in values], rounds) / n * 1e9),
        "re2.fullmatch": round(best(lambda: [rex.fullmatch(v) for v in values], rounds) / n * 1e9),
        "value_predicate (remembered)": round(best(lambda: [remembered(v) for v in values], rounds) / n * 1e9),
    }


def tsbs_source(hosts: int) -> MemorySeriesSource:
    rng = random.Random(1)
    times = list(range(END_MS - 12 * HOUR_MS, END_MS + 1, 10_000))
    series = []
    for h in range(hosts):
        labels = {"__name__": "cpu_usage_user", "hostname": f"host_{h}"}
        series.append(RawSeries(labels, times, [rng.random() * 100 for _ in times]))
    return MemorySeriesSource(series)


def run_range(query: str, start_ms: int, step_ms: int, source: MemorySeriesSource) -> None:
    asyncio.run(range_query(query, start_ms, END_MS, step_ms, source, QueryLimits()))


def query_figures(hosts: int, rounds: int) -> dict[str, float]:
    source, limits = tsbs_source(hosts), QueryLimits()

    def ms(work: Callable[[], object]) -> float:
        return round(best(work, rounds) * 1e3, 1)

    out = {}
    for name, (query, hours, step) in TSBS_SHAPES.items():
        start = END_MS - hours * HOUR_MS
        out[name] = ms(partial(run_range, query, start, step, source))
    instant = 'rate({__name__="cpu_usage_user"}[5m])'
    out["instant rate(all hosts[5m])"] = ms(lambda: asyncio.run(instant_query(instant, END_MS, source, limits)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print("µs per parse: promql_parser.parse, parse_query (parse + mapping)")
    for query, figures in parse_figures(args.rounds).items():
        print(f"  {figures[0]:>8} {figures[1]:>8}  {query}")
    print("ns per label-value match of host_(1|2|3|4|5), anchored, over 1000 distinct values")
    for name, ns in regex_figures(args.rounds).items():
        print(f"  {ns:>8}  {name}")
    print(f"ms per query over {args.hosts} series of 12 h at 10 s (in-memory source)")
    for name, ms in query_figures(args.hosts, args.rounds).items():
        print(f"  {ms:>8}  {name}")


if __name__ == "__main__":
    main()
