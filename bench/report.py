"""Results on disk: the JSON document, a Markdown summary, and a PNG chart of latency percentiles per endpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PERCENTILES = ("p50_ms", "p90_ms", "p95_ms", "p99_ms")


def write_results(results: dict[str, Any], folder: Path, stamp: str) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / f"{stamp}.json", "md": folder / f"{stamp}.md", "png": folder / f"{stamp}.png"}
    chart = write_chart(results, paths["png"])
    if chart is None:
        del paths["png"]
    results["files"] = {kind: path.name for kind, path in paths.items()}
    paths["json"].write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    paths["md"].write_text(markdown(results))
    return paths


def _f(value: Any, digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.{digits}f}"
    return f"{value:,.0f}" if isinstance(value, int | float) else str(value)


def _ratio(value: Any) -> str:
    return "—" if value is None else f"{value:.2f}x"


def markdown(results: dict[str, Any]) -> str:
    meta, engine = results["meta"], results.get("engine", {})
    machine = meta["machine"]
    lines = [
        f"# Benchmark {meta['started']}",
        "",
        f"- Command: `{meta['command']}`{' (quick mode)' if meta['quick'] else ''}",
        f"- Commit: `{meta['git_commit']}`{' with uncommitted changes in the tree' if meta['git_dirty'] else ''}",
        f"- Machine: {machine['cpus']} CPUs ({machine['processor']}), {machine['platform']}, "
        f"Python {machine['python']}",
        f"- Load average before / after: {meta['load_average_before']} / {meta.get('load_average_after')}",
        f"- MongoDB-wire engine: **{engine.get('name')}** ({engine.get('how')})",
        f"- {meta['note']}",
        "",
    ]
    insert_many = results.get("references", {}).get("insert_many", {})
    lines += ["## References", "", "| reference | req/s or docs/s | P99 ms |", "|---|---:|---:|"]
    for run in results["runs"]:
        hello = run.get("hello", {})
        lines.append(
            f"| hello-world ASGI, Granian, {run['workers']} worker(s), {hello.get('connections')} conns | "
            f"{_f(hello.get('rps'), 0)} req/s | {_f(hello.get('p99_ms'), 2)} |"
        )
    lines += [
        f"| raw pymongo insert_many (batches of {insert_many.get('batch_size')}) | "
        f"{_f(insert_many.get('docs_per_s'), 0)} docs/s | — |",
        "",
    ]

    for run in results["runs"]:
        lines += _run_tables(run)
    lines += _peer_table(results)
    gate = results.get("gate", [])
    if gate:
        lines += [
            "## Gate (bench/targets.toml)",
            "",
            "| | target | workers | measured | limit |",
            "|---|---|---:|---:|---:|",
        ]
        for o in gate:
            mark = {"pass": "✅ pass", "fail": "❌ FAIL", "skip": "⏭ skip", "short": "🎯 short of goal"}[o["status"]]
            value = _f(o["value"], 3) if o["value"] is not None else f"— ({o.get('reason', '')})"
            lines.append(f"| {mark} | {o['name']} | {o['workers']} | {value} | {o['limit']} |")
        lines.append("")
    if "png" in results.get("files", {}):
        lines += [f"![latency percentiles]({results['files']['png']})", ""]
    return "\n".join(lines)


def _run_tables(run: dict[str, Any]) -> list[str]:
    w = run["workers"]
    lines = [
        f"## Our server, {w} worker(s): wrk scenarios",
        "",
        "| scenario | endpoint | conns | req/s | events/s | P50 ms | P90 ms | P95 ms | P99 ms | ratio | to | errors "
        "| server's /stats |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|",
    ]
    for name, s in run.get("scenarios", {}).items():
        if "error" in s:
            lines.append(f"| {name} | {s['endpoint']} | | failed: {s['error'][:80]} | | | | | | | | | |")
            continue
        errors = s["non_2xx"] + s["socket_errors"]
        lines.append(
            f"| {name} | {s['endpoint']} | {s['connections']} | {_f(s['rps'], 0)} | {_f(s['events_per_s'], 0)} | "
            f"{_f(s['p50_ms'], 2)} | {_f(s['p90_ms'], 2)} | {_f(s['p95_ms'], 2)} | {_f(s['p99_ms'], 2)} | "
            f"{_ratio(s.get('ratio'))} | {s.get('ratio_to', '')} | {errors} | {_stats_note(s.get('server_stats'))} |"
        )
    for name, reason in run.get("skipped", {}).items():
        lines.append(f"| {name} | skipped: {reason} | | | | | | | | | | | |")
    cached = run.get("scenarios", {}).get("get_cached", {})
    if cached.get("sampled_hit_ratio") is not None:
        lines += ["", f"After get_cached, {cached['sampled_hit_ratio']:.0%} of its 32 queries answered `x-cache: hit`."]
    cold = run.get("cold_start", {})
    if cold:
        samples = ", ".join(f"{s['first_get_ms']:.0f}" for s in cold["samples"])
        health = ", ".join(f"{s['healthz_ms']:.0f}" for s in cold["samples"])
        lines += [
            "",
            f"Cold start (spawn → first 200 of `GET /metrics?limit=1`): median {cold['first_get_ms']:.0f} ms "
            f"(samples {samples}; first 200 of /healthz: {health} ms).",
        ]
    if run.get("seed"):
        seed = run["seed"]
        lines += ["", f"Seeded {seed['metrics']:,} metrics through batch POST in {seed['seconds']} s."]
    storage = run.get("storage")
    if storage and seed:
        held = ", ".join(
            f"{name} {_f(c['data_bytes'] + c['index_bytes'], 0)}" for name, c in storage["collections"].items()
        )
        when = "right after the seed"
        if storage.get("compacted"):
            seeded = storage["after_seed"]["bytes_per_point"]
            compaction_s = storage["compaction"]["seconds"]
            when = f"once `telemetry-server compact` had run ({compaction_s} s; {_f(seeded)} before)"
        lines += [
            "",
            f"Stored {when}: **{_f(storage['bytes_per_point'])} bytes per point** "
            f"({_f(storage['data_bytes'], 0)} B data + {_f(storage['index_bytes'], 0)} B indexes over "
            f"{storage['points']:,} points; per collection, data + indexes: {held}).",
        ]
    mixed = run.get("mixed")
    if mixed:
        total = mixed["total"]
        hit = mixed.get("cache_hit_ratio")
        lines += [
            "",
            f"### Mixed workload (locust), {w} worker(s): {_f(total.get('rps'), 0)} req/s overall, "
            f"GET /metrics cache hit {'—' if hit is None else f'{hit:.1%}'}",
            "",
            "| endpoint | requests | failures | req/s | P50 ms | P90 ms | P95 ms | P99 ms |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, e in [*mixed["endpoints"].items(), ("all", total)]:
            lines.append(
                f"| {name} | {e.get('requests')} | {e.get('failures')} | {_f(e.get('rps'), 0)} | "
                f"{_f(e.get('p50_ms'))} | {_f(e.get('p90_ms'))} | {_f(e.get('p95_ms'))} | {_f(e.get('p99_ms'))} |"
            )
    if mixed and mixed.get("server_stats"):
        lines += ["", f"The server's own counters during the mixed run: {_stats_note(mixed['server_stats'])}."]
    lines.append("")
    return lines


def _stats_note(delta: dict[str, float] | None) -> str:
    """Cache hit ratio per level, rate-limited requests and non-2xx statuses, from a scenario's /stats delta."""
    if not delta:
        return ""
    notes = []
    for level in ("l1", "l2"):
        if f"cache.{level}_hit_ratio" in delta:
            notes.append(f"{level.upper()} hit {delta[f'cache.{level}_hit_ratio']:.1%}")
    if delta.get("write_batches.count"):
        notes.append(f"{delta['write_batches.sum'] / delta['write_batches.count']:.1f} metrics/insert")
    for key, value in delta.items():
        if key.startswith("status.") and not key.endswith((".200", ".201", ".204")):
            notes.append(f"{key.removeprefix('status.')}: {value:g}")
    return ", ".join(notes)


_PAIRS = (
    ("one point per request", "post_single", "influx_write_single", "rps", "req/s"),
    ("batches", "post_batch", "influx_write_batch", "events_per_s", "points/s"),
    ("newest 50 of a series with a tag (ours cached)", "get_cached", "influx_query_latest", "rps", "req/s"),
    ("newest 50 of a series with a tag (ours uncached)", "get_uncached", "influx_query_latest", "rps", "req/s"),
)


def _peer_table(results: dict[str, Any]) -> list[str]:
    influx = results.get("peers", {}).get("influxdb", {})
    if "skipped" in influx:
        return ["## Peer: InfluxDB", "", f"Skipped: {influx['skipped']}.", ""]
    if not results["runs"] or not influx.get("scenarios"):
        return []
    ours = results["runs"][0].get("scenarios", {})
    theirs = influx["scenarios"]
    lines = [
        f"## Peer: {influx.get('version')} (same points, machine and run; "
        f"ours with {results['runs'][0]['workers']} worker(s))",
        "",
        "| question | ours | InfluxDB | ours ÷ InfluxDB | our P99 ms | InfluxDB P99 ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, mine, peer, key, unit in _PAIRS:
        a, b = ours.get(mine, {}), theirs.get(peer, {})
        if key not in a or key not in b:
            continue
        ratio = a[key] / b[key] if b[key] else None
        lines.append(
            f"| {label} | {_f(a[key], 0)} {unit} | {_f(b[key], 0)} {unit} | {_ratio(ratio)} | "
            f"{_f(a.get('p99_ms'), 2)} | {_f(b.get('p99_ms'), 2)} |"
        )
    lines.append("")
    return lines


def write_chart(results: dict[str, Any], path: Path) -> Path | None:
    """Bars of P50/P90/P95/P99 per endpoint (wrk scenarios, then locust's mixed run); None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    groups: list[tuple[str, dict[str, Any]]] = []
    for run in results["runs"]:
        for name, s in run.get("scenarios", {}).items():
            if "error" not in s:
                groups.append((f"{name}\n{run['workers']}w", s))
    for name, s in results.get("peers", {}).get("influxdb", {}).get("scenarios", {}).items():
        if "error" not in s:
            groups.append((name.replace("influx_", "influx\n"), s))
    mixed = [
        (f"mixed\n{n}", e) for run in results["runs"] for n, e in run.get("mixed", {}).get("endpoints", {}).items()
    ]
    panels = [(title, g) for title, g in (("wrk scenarios", groups), ("locust mixed workload", mixed)) if g]
    if not panels:
        return None
    fig, axes = plt.subplots(len(panels), 1, figsize=(13, 4.2 * len(panels)), squeeze=False)
    width = 0.2
    for ax, (title, items) in zip(axes[:, 0], panels, strict=True):
        for k, key in enumerate(PERCENTILES):
            xs = [i + (k - 1.5) * width for i in range(len(items))]
            ax.bar(
                xs, [max(item.get(key) or 0.0, 0.01) for _, item in items], width, label=key.removesuffix("_ms").upper()
            )
        ax.set_xticks(range(len(items)), [label for label, _ in items], fontsize=7)
        ax.set_yscale("log")
        ax.set_ylabel("latency (ms, log)")
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7, ncol=4)
    fig.suptitle(f"telemetry-server latency percentiles — {results['meta']['started']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
