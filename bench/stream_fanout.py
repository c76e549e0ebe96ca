"""Live-stream fan-out: SSE and WebSocket subscribers across filters while points are written.

    .venv/bin/python -m bench.stream_fanout [--sse 1000] [--ws 1000] [--rate 5000] [--seconds 20] [--workers 1]

Starts its own engines and server (loopback, temporary folder). Subscribers are spread over `--filters` names
(`fanout.m<k>`), half of them also filtering on one of `--hosts` tags, and over `--receivers` client processes
(raw sockets for SSE, the `websockets` package for WebSocket). Phases, each `--seconds` long:

1. write throughput with nobody subscribed: `--writers` connections POSTing batches of `--batch` in a loop;
2. the subscribers connect (worker RSS once they are all in);
3. writes paced at `--rate` points/s: latency from a batch's acknowledgement (the writer's clock) to each
   sampled point's receipt (a receiver's clock; same host), and points delivered per second;
4. write throughput again with every subscriber connected and reading.

Prints one JSON document; progress goes to stderr. A measurement, not a gate: the goals (issue 11) are P99 <
50 ms, a write cost < 10 % and worker RSS ≤ 200 MB, and they are reported beside the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import orjson
import websockets

from bench.faults import percentile, start_mongo, start_redis, start_server, worker_rss_mb
from bench.processes import LOOPBACK, free_port, started_children

_VALUE = re.compile(rb'"value":(\d+)\.0')
SAMPLE_EVERY = 7  # points whose sequence number is a multiple of this are timed
REFUSED: dict[str, Counter[int]] = {"paced": Counter(), "closed_loop": Counter()}  # writes answered otherwise than 201


def say(message: str) -> None:
    print(f"[stream_fanout] {message}", file=sys.stderr, flush=True)


def subscriptions(count: int, filters: int, hosts: int, offset: int) -> list[str]:
    queries = []
    for n in range(offset, offset + count):
        query = f"name=fanout.m{n % filters}"
        if n % 2:
            query += f"&tag=host:h{(n // filters) % hosts}"
        queries.append(query)
    return queries


def point(sequence: int, filters: int, hosts: int) -> dict[str, Any]:
    tag = f"host:h{(sequence // filters) % hosts}"
    return {"name": f"fanout.m{sequence % filters}", "tags": [tag], "value": sequence}


# ---- receivers (child processes)


class Tally:
    def __init__(self) -> None:
        self.per_second: Counter[int] = Counter()
        self.samples: list[tuple[int, float]] = []
        self.connected = 0

    def take(self, data: bytes) -> None:
        now = time.time()
        found = _VALUE.findall(data)
        if found:
            self.per_second[int(now)] += len(found)
            self.samples += [(int(s), now) for s in found if int(s) % SAMPLE_EVERY == 0]


async def sse_subscriber(port: int, query: str, tally: Tally) -> None:
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    writer.write(f"GET /metrics/stream?{query} HTTP/1.1\r\nHost: {LOOPBACK}\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    if b" 200 " not in head.split(b"\r\n", 1)[0]:
        raise RuntimeError(f"SSE refused: {head[:200]!r}")
    tally.connected += 1
    while data := await reader.read(65536):
        tally.take(data)


async def ws_subscriber(port: int, query: str, tally: Tally) -> None:
    async with websockets.connect(f"ws://{LOOPBACK}:{port}/metrics/ws?{query}", max_queue=None) as ws:
        tally.connected += 1
        async for message in ws:
            tally.take(message if isinstance(message, bytes) else message.encode())


def receiver(port: int, sse: list[str], ws: list[str], ready: Any, stop: Any, results: Any) -> None:
    async def main() -> None:
        tally = Tally()
        tasks = [asyncio.ensure_future(sse_subscriber(port, q, tally)) for q in sse]
        tasks += [asyncio.ensure_future(ws_subscriber(port, q, tally)) for q in ws]
        deadline = time.monotonic() + 120
        while tally.connected < len(tasks) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            if any(t.done() for t in tasks):
                break
        failed = [t.exception() for t in tasks if t.done() and not t.cancelled() and t.exception()]
        ready.put(("connected", tally.connected, repr(failed[:3])))
        await asyncio.to_thread(stop.wait)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        results.put((dict(tally.per_second), tally.samples))

    asyncio.run(main())


# ---- writers (this process)


async def write_loop(base: str, seconds: float, writers: int, batch: int, args: argparse.Namespace) -> float:
    """Closed loop: points stored per second."""
    sequence = iter(range(10**12, 10**13))  # above the paced phase's numbers: never sampled as its points
    stored = 0
    deadline = time.monotonic() + seconds

    async def one(client: httpx.AsyncClient) -> None:
        nonlocal stored
        while time.monotonic() < deadline:
            body = [point(next(sequence), args.filters, args.hosts) for _ in range(batch)]
            response = await client.post("/metrics", json=body)
            if response.status_code == 201:
                stored += batch
            else:
                REFUSED["closed_loop"][response.status_code] += 1

    started = time.monotonic()
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=httpx.Limits(max_connections=writers)) as client:
        await asyncio.gather(*(one(client) for _ in range(writers)))
    return stored / (time.monotonic() - started)


async def write_paced(
    base: str, seconds: float, rate: int, batch: int, args: argparse.Namespace
) -> dict[int, tuple[float, float]]:
    """`rate` points/s in batches of `batch`; when each point was sent and acknowledged (wall clock)."""
    acked: dict[int, tuple[float, float]] = {}
    refused = REFUSED["paced"]
    period = batch / rate
    in_flight: set[asyncio.Task[None]] = set()
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=httpx.Limits(max_connections=32)) as client:

        async def send(first: int) -> None:
            body = [point(first + n, args.filters, args.hosts) for n in range(batch)]
            sent = time.time()
            response = await client.post("/metrics", json=body)
            if response.status_code != 201:  # a refused write (503: the engine too slow) is counted, not timed
                refused[response.status_code] += 1
                return
            now = time.time()
            acked.update((first + n, (sent, now)) for n in range(batch))

        started = time.monotonic()
        for tick in range(int(seconds / period)):
            await asyncio.sleep(max(0.0, started + tick * period - time.monotonic()))
            task = asyncio.ensure_future(send(tick * batch))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        await asyncio.gather(*in_flight)
    return acked


def run(args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="stream-fanout-"))
    settings = {"STREAM_MAX_PER_KEY": "1000000", "STREAM_MAX_PER_WORKER": "1000000", "LOG_LEVEL": "warning"}
    with started_children() as started:
        mongo, mongo_uri = start_mongo(folder)
        started.append(mongo)
        redis_port = free_port()
        started.append(start_redis(redis_port, folder))
        server = start_server(mongo_uri, f"redis://{LOOPBACK}:{redis_port}", args.workers, folder / "server", settings)
        started.append(server.child)
        say(f"server on {server.url} ({args.workers} worker(s)), {mongo.name}")
        load_before = os.getloadavg()
        rss_idle = worker_rss_mb(server.child.pid)

        say(f"phase 1: write throughput, nobody subscribed ({args.seconds} s)")
        alone = asyncio.run(write_loop(server.url, args.seconds, args.writers, args.batch, args))

        say(f"phase 2: {args.sse} SSE and {args.ws} WebSocket subscribers over {args.receivers} processes")
        context = multiprocessing.get_context("fork")
        ready, results, stop = context.Queue(), context.Queue(), context.Event()
        sse_all = subscriptions(args.sse, args.filters, args.hosts, 0)
        ws_all = subscriptions(args.ws, args.filters, args.hosts, args.sse)
        children = [
            context.Process(
                target=receiver,
                args=(server.port, sse_all[n :: args.receivers], ws_all[n :: args.receivers], ready, stop, results),
            )
            for n in range(args.receivers)
        ]
        for child in children:
            child.start()
        connected = [ready.get(timeout=300) for _ in children]
        say(f"connected: {connected}")
        time.sleep(2)
        rss_subscribed = worker_rss_mb(server.child.pid)

        say(f"phase 3: {args.rate} points/s for {args.seconds} s")
        paced_from = time.time()
        acked = asyncio.run(write_paced(server.url, args.seconds, args.rate, args.batch_paced, args))
        time.sleep(2)  # the last deliveries
        paced_to = time.time()

        say(f"phase 4: write throughput with the subscribers reading ({args.seconds} s)")
        loaded_from = time.time()
        loaded = asyncio.run(write_loop(server.url, args.seconds, args.writers, args.batch, args))
        loaded_to = time.time()
        rss_end = worker_rss_mb(server.child.pid)
        stop.set()
        per_second: Counter[int] = Counter()
        latencies: list[float] = []
        from_sending: list[float] = []
        for _ in children:
            seconds_counts, samples = results.get(timeout=120)
            per_second.update(seconds_counts)
            latencies += [(at - acked[s][1]) * 1000 for s, at in samples if s in acked]
            from_sending += [(at - acked[s][0]) * 1000 for s, at in samples if s in acked]
        for child in children:
            child.join(timeout=30)

    def delivered(start: float, end: float) -> float:
        whole = [second for second in per_second if start <= second < int(end)]
        return round(sum(per_second[s] for s in whole) / max(1, len(whole)))

    cost = (alone - loaded) / alone if alone else float("nan")
    return {
        "command": " ".join(sys.argv),
        "workers": args.workers,
        "load_average_at_start": [round(v, 1) for v in load_before],
        "subscribers": {"sse": args.sse, "ws": args.ws, "filters": args.filters, "hosts": args.hosts},
        "connected": [c[1] for c in connected],
        "paced": {
            "rate_points_per_s": args.rate,
            "points_written": len(acked),
            "latency_ms": {
                "samples": len(latencies),
                "p50": percentile(latencies, 0.5),
                "p99": percentile(latencies, 0.99),
                "max": round(max(latencies), 1) if latencies else None,
                "mean": round(statistics.fmean(latencies), 1) if latencies else None,
            },
            # The change is logged before the write is acknowledged, so an event may arrive before the writer has
            # read its acknowledgement (a negative latency); from the sending of the write it cannot.
            "from_sending_ms": {"p50": percentile(from_sending, 0.5), "p99": percentile(from_sending, 0.99)},
            "points_delivered_per_s": delivered(paced_from + 1, paced_to - 2),
        },
        "write_points_per_s": {
            "nobody_subscribed": round(alone),
            "subscribers_reading": round(loaded),
            "cost": round(cost, 3),
            "delivered_per_s_meanwhile": delivered(loaded_from + 1, loaded_to),
        },
        "writes_refused_by_status": {phase: dict(counts) for phase, counts in REFUSED.items()},
        "worker_rss_mb": {"idle": rss_idle, "subscribed": rss_subscribed, "end": rss_end},
        "goals": {"p99_ms": 50, "write_cost": 0.10, "worker_rss_mb": 200},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sse", type=int, default=1000)
    parser.add_argument("--ws", type=int, default=1000)
    parser.add_argument("--rate", type=int, default=5000, help="points/s in the paced phase")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--filters", type=int, default=20, help="metric names subscribers spread over")
    parser.add_argument("--hosts", type=int, default=10, help="host tags half the subscribers also filter on")
    parser.add_argument("--receivers", type=int, default=4, help="client processes holding the subscribers")
    parser.add_argument("--writers", type=int, default=4, help="connections of the closed-loop write phases")
    parser.add_argument("--batch", type=int, default=100, help="points per POST in the closed-loop phases")
    parser.add_argument("--batch-paced", type=int, default=50, help="points per POST in the paced phase")
    print(orjson.dumps(run(parser.parse_args()), option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
