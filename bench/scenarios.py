"""The wrk scenarios: what each one sends, at how many connections, and which reference it is divided by."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from bench.loadgen import Load


class Target(StrEnum):
    SERVER = "server"
    INFLUX = "influxdb"


class Reference(StrEnum):
    HELLO = "hello"  # req/s ÷ the hello-world ceiling's req/s
    INSERT_MANY = "insert_many"  # events/s ÷ the engine's raw insert_many docs/s


@dataclass(frozen=True)
class Scenario:
    name: str
    endpoint: str
    target: Target
    load: Load
    events_per_request: int = 1
    reference: Reference | None = None
    summary: str = ""


@dataclass(frozen=True)
class Files:
    """Request data written by the runner (one record per request; see wrk/common.lua)."""

    cached_paths: Path
    uncached_paths: Path
    by_id_paths: Path
    single_bodies: Path
    batch_bodies: Path
    batch_series_bodies: Path
    put_ids: Path
    put_bodies: Path
    delete_ids: Path
    aggregate_paths: Path | None
    top_events_paths: Path | None
    prompt_paths: Path | None
    influx_single: Path | None
    influx_batch: Path | None
    influx_query: Path | None


ALL_NAMES = (
    "get_cached",
    "get_uncached",
    "get_by_id",
    "aggregate",
    "top_events_uncached",
    "query_prompt",
    "post_single",
    "post_batch",
    "post_batch_series",
    "put",
    "delete",
    "influx_write_single",
    "influx_write_batch",
    "influx_query_latest",
)


# "Top 5 events today" is a latency target for one question, not a throughput: two connections (two dashboards
# at once), so the P99 is the query's, not the queue's that 64 connections would build in front of it.
TOP_EVENTS_CONNECTIONS = 2


def build_scenarios(
    files: Files, duration_s: float, connections: int, batch_connections: int, batch_size: int, threads: int
) -> list[Scenario]:
    """Every scenario whose data exists; the order matters: reads run before writes change what is cached."""

    def load(script: str, *args: str | Path, conns: int = connections) -> Load:
        return Load(script, tuple(str(a) for a in args), conns, threads, duration_s)

    t = str(threads)
    out = [
        Scenario(
            "get_cached",
            "GET /metrics",
            Target.SERVER,
            load("get.lua", files.cached_paths, t),
            reference=Reference.HELLO,
            summary="32 dashboard queries (name + region tag, newest 50), warmed: cache hits",
        ),
        Scenario(
            "get_uncached",
            "GET /metrics",
            Target.SERVER,
            load("get.lua", files.uncached_paths, t),
            reference=Reference.HELLO,
            summary="the same query shape, each with its own `from`: every one a miss",
        ),
        Scenario(
            "get_by_id",
            "GET /metrics/{id}",
            Target.SERVER,
            load("get.lua", files.by_id_paths, t),
            reference=Reference.HELLO,
            summary="seeded ids in turn",
        ),
    ]
    if files.aggregate_paths is not None:
        out.append(
            Scenario(
                "aggregate",
                "GET /metrics/aggregate",
                Target.SERVER,
                load("get.lua", files.aggregate_paths, t),
                reference=Reference.HELLO,
                summary="one aggregate per hot name",
            )
        )
    if files.top_events_paths is not None:
        out.append(
            Scenario(
                "top_events_uncached",
                "GET /metrics/aggregate",
                Target.SERVER,
                load("get.lua", files.top_events_paths, t, conns=max(TOP_EVENTS_CONNECTIONS, threads)),
                reference=Reference.HELLO,
                summary='"top 5 events today" (count by name, top 5, over every seeded point), each a cache miss',
            )
        )
    if files.prompt_paths is not None:
        out.append(
            Scenario(
                "query_prompt",
                "GET /query",
                Target.SERVER,
                load("get.lua", files.prompt_paths, t),
                reference=Reference.HELLO,
                summary="25 prompts (top N, average, latest, max)",
            )
        )
    out += [
        Scenario(
            "post_single",
            "POST /metrics",
            Target.SERVER,
            load("post.lua", "/metrics", "application/json", files.single_bodies),
            reference=Reference.HELLO,
            summary="one metric per request, server-stamped",
        ),
        Scenario(
            "post_batch",
            "POST /metrics (batch)",
            Target.SERVER,
            load("post.lua", "/metrics", "application/json", files.batch_bodies, conns=batch_connections),
            events_per_request=batch_size,
            reference=Reference.INSERT_MANY,
            summary=f"JSON arrays of {batch_size} metrics",
        ),
        Scenario(
            "post_batch_series",
            "POST /metrics (batch)",
            Target.SERVER,
            load("post.lua", "/metrics", "application/json", files.batch_series_bodies, conns=batch_connections),
            events_per_request=batch_size,
            reference=Reference.INSERT_MANY,
            summary=f"JSON arrays of {batch_size} metrics in runs of 100 seconds of one series (post_batch's "
            f"arrays each hold {batch_size} series: a bucket per point)",
        ),
        Scenario(
            "put",
            "PUT /metrics/{id}",
            Target.SERVER,
            load("put.lua", files.put_ids, t, files.put_bodies),
            reference=Reference.HELLO,
            summary="replace seeded metrics in turn",
        ),
        Scenario(
            "delete",
            "DELETE /metrics/{id}",
            Target.SERVER,
            load("delete.lua", files.delete_ids, t),
            reference=Reference.HELLO,
            summary="each seeded id once; threads stop when their ids run out",
        ),
    ]
    if files.influx_single and files.influx_batch and files.influx_query:
        out += [
            Scenario(
                "influx_write_single",
                "InfluxDB POST /write",
                Target.INFLUX,
                load("post.lua", "/write?db=bench", "text/plain", files.influx_single),
                summary="the post_single points as line protocol, one per request",
            ),
            Scenario(
                "influx_write_batch",
                "InfluxDB POST /write (batch)",
                Target.INFLUX,
                load("post.lua", "/write?db=bench", "text/plain", files.influx_batch, conns=batch_connections),
                events_per_request=batch_size,
                summary=f"the post_batch points, {batch_size} lines per request",
            ),
            Scenario(
                "influx_query_latest",
                "InfluxDB GET /query",
                Target.INFLUX,
                load("get.lua", files.influx_query, t),
                summary="the get_cached questions in InfluxQL (newest 50 with a tag)",
            ),
        ]
    return out
