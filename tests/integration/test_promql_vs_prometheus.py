"""The PromQL engine against Prometheus 2.42 itself: one data set loaded into both, a corpus of queries asked of
both, answers compared within float tolerance. Prometheus is the reference for PromQL's semantics."""

from __future__ import annotations

import asyncio
import math
import random
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from telemetry_server import engines
from telemetry_server.promql.engine import PromQLError, QueryLimits, instant_query, range_query
from telemetry_server.promql.memory_source import MemorySeriesSource
from telemetry_server.promql.source import RawSeries

from .agents import program, running

T0 = 1_700_000_000_000  # ms; the data covers [T0, T0 + 60 min]
SCRAPE_MS = 15_000
HOSTS = ("h1", "h2", "h3", "h4")
BUCKETS = ("0.1", "0.5", "1", "5", "+Inf")
INSTANTS = (T0 + 30 * 60_000 + 7_000, T0 + 59 * 60_000 + 500, T0 + 62 * 60_000, T0 + 66 * 60_000)
RANGES = ((T0 + 10 * 60_000, T0 + 50 * 60_000, 60_000), (T0 + 3 * 60_000 + 250, T0 + 63 * 60_000, 37_000))

# Every function and operator of the subset, on gauges, counters with resets, histogram buckets, a series with a
# gap longer than the lookback, and NaN samples.
QUERIES = [
    # selectors, matchers, offset, lookback
    "node_temp",
    'node_temp{dc="east"}',
    'node_temp{dc!="east"}',
    'node_temp{host=~"h[12]"}',
    'node_temp{host!~"h1|h3"}',
    'node_temp{host=~"h.*", dc=~"we.*"}',
    '{__name__=~"node_t.*"}',
    '{__name__="http_requests_total", code="500"}',
    "node_temp offset 5m",
    "node_temp offset 61m",
    "sparse_gauge",
    "node_temp[45s]",
    "node_temp[1m] offset 2m",
    "special",
    'node_temp{host=~""}',
    'node_temp{dc=""}',
    'node_temp{host=~"(?i)H1"}',
    'node_temp{host=~"h1|"}',
    'node_temp{host!~""}',
    '{__name__!~"node.*", host="h1"}',
    # range functions
    "rate(http_requests_total[5m])",
    "rate(http_requests_total[1m])",
    "rate(http_requests_total[37s])",
    "irate(http_requests_total[5m])",
    "increase(http_requests_total[10m])",
    "increase(http_requests_total[2m] offset 3m)",
    "delta(node_temp[5m])",
    "idelta(node_temp[5m])",
    "rate(sparse_gauge[10m])",
    "avg_over_time(node_temp[5m])",
    "min_over_time(node_temp[7m])",
    "max_over_time(node_temp[7m])",
    "sum_over_time(node_temp[3m])",
    "count_over_time(node_temp[4m])",
    "count_over_time(sparse_gauge[15m])",
    "last_over_time(node_temp[2m])",
    "last_over_time(sparse_gauge[20m])",
    "quantile_over_time(0.9, node_temp[10m])",
    "quantile_over_time(0.25, node_temp[10m])",
    "avg_over_time(special[5m])",
    "max_over_time(special[5m])",
    # aggregations
    "sum(node_temp)",
    "sum by (dc) (node_temp)",
    "sum without (host) (node_temp)",
    "avg by (dc) (node_temp)",
    "min by (dc) (node_temp)",
    "max(node_temp)",
    "count by (code) (http_requests_total)",
    "count without (dc) (node_temp)",
    "sum by (host) (rate(http_requests_total[5m]))",
    "topk(2, node_temp)",
    "bottomk(2, node_temp)",
    "topk by (dc) (1, node_temp)",
    "bottomk without (host) (1, rate(http_requests_total[5m]))",
    # Ties: every count is equal. Prometheus keeps the members its heap keeps, fed in label order from a range
    # function (from a nested aggregation or operator it is fed in Go map order, so ties there are not compared).
    "topk(3, count_over_time(node_temp[5m]))",
    "bottomk(2, count_over_time(http_requests_total[5m]))",
    "quantile(0.5, node_temp)",
    "quantile by (dc) (0.9, node_temp)",
    "quantile(0, node_temp)",
    'count_values("value", round(node_temp))',
    'count_values by (dc) ("v", ceil(node_temp / 10))',
    "sum(special)",
    "max(special)",
    "min(special)",
    # binary operators
    "node_temp * 2",
    "2 - node_temp",
    "node_temp / 0",
    "node_temp % 7",
    "node_temp ^ 2",
    "-node_temp",
    "node_temp > 20",
    "20 < node_temp",
    "node_temp >= bool 20",
    "node_temp == bool node_temp",
    "node_temp != 21",
    "node_temp <= 18",
    "1 + 2 * 3",
    "2 ^ 10 / 4",
    "5 > bool 3",
    "node_temp - node_temp offset 5m",
    'node_temp / on(host, dc) node_temp{dc="east"}',
    "rate(http_requests_total[5m]) / ignoring(code) group_left sum without (code) (rate(http_requests_total[5m]))",
    "node_temp * on(host) group_left(version) build_info",
    "build_info * on(host) group_right(version) node_temp",
    "node_temp > on(host) group_left node_temp offset 1m",
    "node_temp and node_temp > 20",
    "node_temp or sparse_gauge",
    'node_temp unless on(dc) node_temp{dc="west"}',
    'node_temp and on(host) build_info{version="2"}',
    "http_requests_total > bool ignoring(code) group_left max without (code) (http_requests_total)",
    "sum by (dc) (node_temp) / scalar(count(node_temp))",
    # instant-vector functions
    "abs(node_temp - 20)",
    "ceil(node_temp)",
    "floor(node_temp)",
    "round(node_temp)",
    "round(node_temp, 0.25)",
    "round(node_temp, 5)",
    "clamp_min(node_temp, 20)",
    "clamp_max(node_temp, 20)",
    "histogram_quantile(0.5, rate(req_latency_bucket[5m]))",
    "histogram_quantile(0.5, rate(req_latency_bucket[1m]))",
    "histogram_quantile(0.9, sum by (le) (rate(req_latency_bucket[5m])))",
    "histogram_quantile(0.99, sum by (le, host) (increase(req_latency_bucket[10m])))",
    "histogram_quantile(0, req_latency_bucket)",
    "histogram_quantile(1.5, req_latency_bucket)",
    'label_replace(node_temp, "site", "$1-x", "host", "h(.*)")',
    'label_replace(node_temp, "host", "", "host", "h1")',
    'label_replace(node_temp, "zone", "${1}z", "dc", "(e)ast")',
    "time()",
    "time() - 60",
    "vector(1)",
    "vector(time())",
    "scalar(sum(node_temp))",
    "scalar(node_temp)",
    'node_temp * scalar(build_info{host="h1"})',
    "floor(-node_temp / 100)",
    # NaN samples, empty operands, odd parameters, more matching shapes
    "increase(special[5m])",
    "irate(special[5m])",
    "quantile_over_time(0.5, special[5m])",
    "clamp_min(special, 5)",
    "special > 5",
    "quantile(0.5, special)",
    'count_values("v", special)',
    "avg(special)",
    "rate(node_temp[5m])",
    "idelta(http_requests_total[1m])",
    "increase(http_requests_total[15s])",
    "quantile_over_time(1.5, node_temp[5m])",
    "round(-node_temp)",
    "round(node_temp, -1)",
    "clamp_max(node_temp, NaN)",
    "quantile(-1, node_temp)",
    "quantile(NaN, node_temp)",
    "topk(0, node_temp)",
    "topk(2.9, node_temp)",
    "0 / 0",
    "(-8) ^ (1/3)",
    "(-node_temp) ^ 0.5",
    "node_temp / node_temp offset 70m",
    'sum(node_temp{host="nope"})',
    "sum(node_temp) or vector(0)",
    "vector(1) or node_temp",
    'count_values("host", node_temp)',
    'label_replace(node_temp, "__name__", "renamed", "", "")',
    r'histogram_quantile(0.5, req_latency_bucket{le=~"0.1|1|\\+Inf"})',
    'max by (dc, __name__) ({__name__=~"node_.*"})',
    "node_temp > on(host) node_humidity",
    "node_temp == bool ignoring(dc) node_humidity",
    "node_temp + ignoring(dc) group_left(dc) node_humidity",
    "sum by (host) (node_temp) + on(host) group_right sum by (host, code) (http_requests_total)",
    # errors both must refuse alike
    '{host=~".*"}',
    "node_temp + on(dc) node_temp",
    "sum by (dc) (node_temp) * on(dc) group_left node_temp",
    'label_replace(node_temp, "host", "x", "host", ".*")',
    'label_replace(node_temp, "1bad", "x", "host", ".*")',
    'label_replace(node_temp, "x", "y", "host", "(")',
    'count_values("1bad", node_temp)',
    'abs({__name__=~"node_temp|node_humidity", host="h1"})',
    'rate({__name__=~"node_temp|node_humidity", host="h1"}[5m])',
    '-{__name__=~"node_temp|node_humidity", host="h1"}',
    '{__name__=~"node_temp|node_humidity", host="h1"} * 2',
    '{__name__=~"node_temp|node_humidity", host="h1"} > bool 2',
    "node_temp / ignoring(dc) node_humidity",
    'sum by (__name__) ({__name__=~"node_.*"})',
]


@dataclass(frozen=True, slots=True)
class DataSet:
    series: list[RawSeries]

    def openmetrics(self) -> str:
        lines = []
        for s in self.series:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()) if k != "__name__")
            for t, v in zip(s.timestamps, s.values, strict=True):
                value = "NaN" if math.isnan(v) else repr(v)
                lines.append(f"{s.labels['__name__']}{{{labels}}} {value} {t // 1000}.{t % 1000:03d}")
        return "\n".join([*lines, "# EOF", ""])


def make_data() -> DataSet:
    """Deterministic samples, scraped every 15 s with up to 1 s of jitter, like a real scraper's."""
    rng = random.Random(14)
    times = [T0 + i * SCRAPE_MS + rng.randrange(0, 1000) for i in range(60 * 60_000 // SCRAPE_MS + 1)]
    series: list[RawSeries] = []
    for index, host in enumerate(HOSTS):
        dc = "east" if index % 2 == 0 else "west"
        level = 15.0 + index * 2
        temps = []
        for _ in times:
            level += rng.uniform(-0.8, 0.8)
            temps.append(round(level, 2))
        series.append(RawSeries({"__name__": "node_temp", "host": host, "dc": dc}, times, temps))
        humidity = [round(50 + 10 * math.sin(i / 40 + index), 3) for i in range(len(times))]
        series.append(RawSeries({"__name__": "node_humidity", "host": host, "dc": dc}, times, humidity))
        series.append(RawSeries({"__name__": "build_info", "host": host, "version": str(index % 2 + 1)}, times,
                                [1.0] * len(times)))  # fmt: skip
        for code in ("200", "500"):
            count, counts = float(rng.randrange(0, 100)), []
            for _ in times:
                if rng.random() < 0.03:
                    count = float(rng.randrange(0, 5))  # a restart: the counter starts over
                else:
                    count += rng.randrange(0, 20 if code == "200" else 3)
                counts.append(count)
            series.append(RawSeries({"__name__": "http_requests_total", "host": host, "code": code}, times, counts))
    for host in HOSTS[:2]:
        cumulative = [0.0] * len(BUCKETS)
        columns: list[list[float]] = [[] for _ in BUCKETS]
        for _ in times:
            for _ in range(rng.randrange(0, 30)):
                observed = rng.expovariate(2.0)
                for b, bound in enumerate(BUCKETS):
                    if observed <= float(bound):
                        cumulative[b] += 1
            for b in range(len(BUCKETS)):
                columns[b].append(cumulative[b])
        for bound, column in zip(BUCKETS, columns, strict=True):
            labels = {"__name__": "req_latency_bucket", "host": host, "le": bound}
            series.append(RawSeries(labels, times, column))
    # A gap of 12 minutes (longer than the 5-minute lookback) in the middle, and one after the data ends.
    sparse = [(t, float(i)) for i, t in enumerate(times) if not (20 * 4 <= i < 32 * 4) and i < 57 * 4]
    series.append(RawSeries({"__name__": "sparse_gauge", "host": "h1"}, [t for t, _ in sparse], [v for _, v in sparse]))
    special = [math.nan if i % 7 == 3 else float(i % 11) for i in range(len(times))]
    series.append(RawSeries({"__name__": "special", "kind": "nan"}, times, special))
    return DataSet(series)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Prometheus 2.42 serving the data set from blocks made by promtool; yields its base URL."""
    prometheus_bin, promtool = program("prometheus", "prometheus"), program("promtool", "prometheus")
    folder = tmp_path_factory.mktemp("prometheus")
    source = folder / "data.om"
    source.write_text(make_data().openmetrics())
    storage = folder / "tsdb"
    subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(source), str(storage)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    config = folder / "prometheus.yml"
    config.write_text("global: {}\n")  # no scrape configs: it only serves the blocks
    port = engines.free_port()
    command = [
        prometheus_bin,
        f"--config.file={config}",
        f"--storage.tsdb.path={storage}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=100y",
    ]
    with running("prometheus", command, port, folder / "prometheus.log"):
        base = f"http://127.0.0.1:{port}"
        _wait_ready(base)
        yield base


def _wait_ready(base: str) -> None:
    for _ in range(300):
        try:
            if httpx.get(f"{base}/-/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        asyncio.run(asyncio.sleep(0.1))
    raise AssertionError("Prometheus did not become ready")


def _cases() -> list[tuple[str, dict[str, str]]]:
    cases = []
    for query in QUERIES:
        for t in INSTANTS[:2] if "[" in query else INSTANTS:
            cases.append((query, {"query": query, "time": str(t / 1000)}))
        if not query.endswith("]"):
            for start, end, step in RANGES:
                params = {"query": query, "start": str(start / 1000), "end": str(end / 1000), "step": str(step / 1000)}
                cases.append((query, params))
    return cases + _edge_cases()


def _edge_cases() -> list[tuple[str, dict[str, str]]]:
    """Instants exactly on the lookback's and a range window's edge (both ends included in Prometheus 2.x)."""
    data = make_data().series
    sparse_end = next(s for s in data if s.labels["__name__"] == "sparse_gauge").timestamps[-1]
    temp_sample = next(s for s in data if s.labels["__name__"] == "node_temp").timestamps[100]
    edges = [
        ("sparse_gauge", sparse_end + 300_000),
        ("sparse_gauge", sparse_end + 300_001),
        ("count_over_time(node_temp[1m])", temp_sample + 60_000),
        ("count_over_time(node_temp[1m])", temp_sample + 59_999),
        ("rate(http_requests_total[1m])", temp_sample + 60_000),
        ("node_temp offset -5m", temp_sample),
    ]
    return [(query, {"query": query, "time": f"{t // 1000}.{t % 1000:03d}"}) for query, t in edges]


async def _ours(source: MemorySeriesSource, params: dict[str, str]) -> dict[str, Any]:
    limits = QueryLimits()
    try:
        if "time" in params:
            result = await instant_query(params["query"], round(float(params["time"]) * 1000), source, limits)
        else:
            start, end, step = (round(float(params[k]) * 1000) for k in ("start", "end", "step"))
            result = await range_query(params["query"], start, end, step, source, limits)
    except PromQLError as exc:
        return {"status": "error", "errorType": exc.code, "error": exc.detail}
    return {"status": "success", "data": {"resultType": result.result_type, "result": result.result}}


def _close(a: str, b: str) -> bool:
    x, y = float(a), float(b)
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    return math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9)


def _difference(theirs: dict[str, Any], ours: dict[str, Any]) -> str | None:
    if theirs["status"] != ours["status"]:
        return f"status {theirs.get('error', 'success')!r} vs ours {ours.get('error', 'success')!r}"
    if theirs["status"] == "error":
        return None if theirs["errorType"] == ours["errorType"] else f"errorType {theirs} vs {ours}"
    a, b = theirs["data"], ours["data"]
    if a["resultType"] != b["resultType"]:
        return f"resultType {a['resultType']} vs {b['resultType']}"
    if a["resultType"] in ("scalar", "string"):
        same = a["result"][0] == b["result"][0] and (
            a["result"][1] == b["result"][1] or (a["resultType"] == "scalar" and _close(a["result"][1], b["result"][1]))
        )
        return None if same else f"{a['result']} vs {b['result']}"
    key = "value" if a["resultType"] == "vector" else "values"

    def by_labels(result: list[dict[str, Any]]) -> dict[tuple[tuple[str, str], ...], list[Any]]:
        return {tuple(sorted(r["metric"].items())): [r[key]] if key == "value" else r[key] for r in result}

    if len(a["result"]) != len(b["result"]):
        return f"{len(a['result'])} series vs ours {len(b['result'])}"
    mine, reference = by_labels(b["result"]), by_labels(a["result"])
    if mine.keys() != reference.keys():
        return f"series {sorted(reference)} vs ours {sorted(mine)}"
    for labels, points in reference.items():
        other = mine[labels]
        if [p[0] for p in points] != [p[0] for p in other]:
            return f"{labels}: timestamps {[p[0] for p in points]} vs {[p[0] for p in other]}"
        for p, q in zip(points, other, strict=True):
            if not _close(p[1], q[1]):
                return f"{labels} at {p[0]}: {p[1]} vs ours {q[1]}"
    return None


def test_queries_answer_as_prometheus_does(prometheus: str) -> None:
    source = MemorySeriesSource(make_data().series)
    cases = _cases()
    assert len(QUERIES) >= 80
    differences, answered = [], 0
    with httpx.Client(base_url=prometheus, timeout=30) as client:
        for query, params in cases:
            path = "/api/v1/query" if "time" in params else "/api/v1/query_range"
            theirs = client.get(path, params=params).json()
            ours = asyncio.run(_ours(source, params))
            answered += bool(theirs.get("data", {}).get("result"))
            difference = _difference(theirs, ours)
            if difference is not None:
                differences.append(f"{query} {params}: {difference}")
    assert answered > 0.75 * len(cases)  # a comparison of empty answers would prove nothing (some are meant empty)
    assert not differences, f"{len(differences)} of {len(cases)} answers differ:\n" + "\n".join(differences)
