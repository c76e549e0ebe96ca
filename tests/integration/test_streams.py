"""Live streams over real sockets: SSE (httpx) and WebSocket (websockets) clients of real 2-worker servers
sharing one Redis: filters, rollups, per-series order, exactly once across workers and instances, resume,
gap, lagged, auth, caps and shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
import websockets

from telemetry_server.auth.keys import generate_key
from tests.integration.conftest import ServerProcess

BOOTSTRAP = generate_key()[0]
WAIT_SECONDS = 20.0


@dataclass(frozen=True)
class Ev:
    event: str
    id: str | None
    data: Any


class SseStream:
    """One SSE subscription: events parsed as they arrive, read in a background task."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.events: list[Ev] = []
        self.comments = 0
        self.ended = asyncio.Event()
        self._arrived = asyncio.Event()
        self._task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        fields: dict[str, str] = {}
        try:
            async for line in self.response.aiter_lines():
                if line.startswith(":"):
                    self.comments += 1
                elif line == "":
                    if "data" in fields:
                        self.events.append(Ev(fields["event"], fields.get("id"), orjson.loads(fields["data"])))
                        self._arrived.set()
                    fields = {}
                else:
                    name, _, value = line.partition(": ")
                    fields[name] = value
        except (httpx.HTTPError, asyncio.CancelledError):
            pass
        finally:
            self.ended.set()
            self._arrived.set()

    def points(self) -> list[Ev]:
        return [e for e in self.events if e.event == "point"]

    async def wait_for(self, check: Callable[[list[Ev]], bool], seconds: float = WAIT_SECONDS) -> list[Ev]:
        deadline = time.monotonic() + seconds
        while not check(self.events):
            left = deadline - time.monotonic()
            if left <= 0 or self.ended.is_set():
                break
            self._arrived.clear()
            try:
                async with asyncio.timeout(min(left, 0.5)):
                    await self._arrived.wait()
            except TimeoutError:
                pass
        return self.events


@asynccontextmanager
async def sse(
    base_url: str, query: str = "", headers: dict[str, str] | None = None, expect: int = 200
) -> AsyncIterator[SseStream]:
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(30, read=None)) as client,
        client.stream("GET", f"/metrics/stream?{query}", headers=headers or {}) as response,
    ):
        assert response.status_code == expect  # not reading the body: a 200 never ends
        stream = SseStream(response)
        try:
            yield stream  # registered before the answer started: nothing written from now on is missed
        finally:
            stream._task.cancel()


async def ws_events(ws: Any, count: int, seconds: float = WAIT_SECONDS) -> list[Ev]:
    out: list[Ev] = []
    async with asyncio.timeout(seconds):
        while len(out) < count:
            message = orjson.loads(await ws.recv())
            if message["event"] != "keep-alive":
                out.append(Ev(message["event"], message["id"], message["data"]))
    return out


def ws_url(base_url: str, query: str = "") -> str:
    return base_url.replace("http://", "ws://") + f"/metrics/ws?{query}"


async def write(client: httpx.AsyncClient, name: str, value: float, tags: list[str] | None = None) -> str:
    response = await client.post("/metrics", json={"name": name, "tags": tags or [], "value": value})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def values(events: list[Ev]) -> list[float]:
    return [e.data["metric"]["value"] for e in events if e.event == "point"]


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


@pytest.fixture(scope="module")
def instances(server_factory: Callable[..., ServerProcess], base_url: str) -> tuple[str, str]:
    """The shared 2-worker test server and a second 2-worker instance on the same MongoDB and Redis."""
    return base_url, server_factory(workers=2).base_url


# --- filters, ops and rollups


def test_filters_pick_the_matching_writes_and_every_op_is_an_event(base_url: str, metric_name: str) -> None:
    async def scenario() -> None:
        async with (
            sse(base_url, f"name={metric_name}.cpu&tag=host:a") as by_name_and_tag,
            sse(base_url, f"name_prefix={metric_name}.&value_gt=10") as by_prefix_and_value,
            httpx.AsyncClient(base_url=base_url, timeout=30) as client,
        ):
            await write(client, f"{metric_name}.cpu", 1, ["host:a", "dc:x"])
            await write(client, f"{metric_name}.cpu", 2, ["host:b"])
            await write(client, f"{metric_name}.mem", 20, ["host:a"])
            await write(client, f"{metric_name}.cpu", 30, ["host:a"])
            await write(client, "other." + metric_name, 40, ["host:a"])
            kept = await write(client, f"{metric_name}.cpu", 3, ["host:a"])
            replaced = await client.put(
                f"/metrics/{kept}", json={"name": f"{metric_name}.cpu", "tags": ["host:a"], "value": 4}
            )
            assert replaced.status_code == 200
            assert (await client.delete(f"/metrics/{kept}")).status_code == 204

            events = await by_name_and_tag.wait_for(lambda es: len(es) >= 5)
            assert [(e.data["op"], e.data["metric"]["value"]) for e in events] == [
                ("create", 1),
                ("create", 30),
                ("create", 3),
                ("update", 4),
                ("delete", 4),  # a delete carries the metric as it was
            ]
            assert all(e.id for e in events)
            events = await by_prefix_and_value.wait_for(lambda es: len(es) >= 2)
            assert values(events) == [20, 30]
            await asyncio.sleep(0.5)
            assert len(by_name_and_tag.events) == 5
            assert len(by_prefix_and_value.events) == 2

    run(scenario())


def test_bad_parameters_are_refused_as_the_listing_refuses_them(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=10) as http:
        for query in (
            "name=",
            "tag=" + "x" * 300,
            "value_gt=x",
            "fn=avg",
            "every=0s",
            "every=10s&fn=median",
            "bogus=1",
        ):
            response = http.get(f"/metrics/stream?{query}")
            assert response.status_code == 422, query
            assert response.headers["content-type"] == "application/problem+json"
        assert http.get("/metrics/stream", headers={"last-event-id": "nope"}).status_code == 422
        assert http.get("/metrics/ws").status_code == 426
        head = http.head("/metrics/stream")  # answered, not held open
        assert head.status_code == 200
        assert head.headers["content-type"].startswith("text/event-stream")


def test_a_rollup_sends_one_aggregate_per_interval_and_series(base_url: str, metric_name: str) -> None:
    start = int(time.time()) - 30  # a closed interval: sent on the next tick
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start - start % 5))

    async def scenario() -> None:
        async with (
            sse(base_url, f"name={metric_name}&every=5s&fn=sum") as rollups,
            httpx.AsyncClient(base_url=base_url, timeout=30) as client,
        ):
            batch = [
                {"name": metric_name, "tags": [tag], "value": value, "timestamp": f"{stamp}.{n}00Z"}
                for n, (tag, value) in enumerate([("host:a", 1), ("host:a", 2), ("host:b", 5), ("host:a", 4)])
            ]
            assert (await client.post("/metrics", json=batch)).status_code == 201
            events = await rollups.wait_for(lambda es: len(es) >= 2)
            by_tag = {tuple(e.data["tags"]): e.data for e in events}
            assert {e.event for e in events} == {"rollup"}
            assert by_tag[("host:a",)]["value"] == 7
            assert by_tag[("host:a",)]["count"] == 3
            assert by_tag[("host:b",)]["value"] == 5
            assert by_tag[("host:b",)]["fn"] == "sum"
            assert by_tag[("host:a",)]["start"].startswith(stamp)

    run(scenario())


# --- order and exactly once


def test_each_series_arrives_in_acknowledgement_order_exactly_once_across_workers(
    base_url: str, metric_name: str
) -> None:
    """Eight subscribers (spread over both workers by the kernel) and four writers each on their own connection
    (so on either worker), each writing its series one point after the other."""
    writes_per_series, series = 60, 4

    async def writer(tag: str) -> None:
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            for value in range(writes_per_series):
                await write(client, metric_name, value, [tag])

    async def scenario() -> None:
        async with contextlib.AsyncExitStack() as stack:
            streams = [await stack.enter_async_context(sse(base_url, f"name={metric_name}")) for _ in range(8)]
            await asyncio.gather(*(writer(f"s:{n}") for n in range(series)))
            total = writes_per_series * series
            for stream in streams:
                events = await stream.wait_for(lambda es: len(es) >= total)
                by_series: dict[str, list[float]] = {}
                for event in events:
                    by_series.setdefault(event.data["metric"]["tags"][0], []).append(event.data["metric"]["value"])
                assert by_series == {f"s:{n}": list(range(writes_per_series)) for n in range(series)}
                assert len({e.id for e in events}) == total

    run(scenario())


def test_writes_on_either_instance_reach_subscribers_of_both_exactly_once(
    instances: tuple[str, str], metric_name: str
) -> None:
    first, second = instances

    async def scenario() -> None:
        async with (
            sse(first, f"name={metric_name}") as on_first,
            sse(second, f"name={metric_name}") as on_second,
            websockets.connect(ws_url(second, f"name={metric_name}")) as ws_on_second,
            httpx.AsyncClient(base_url=first, timeout=30) as to_first,
            httpx.AsyncClient(base_url=second, timeout=30) as to_second,
        ):
            await asyncio.sleep(0.5)  # past the WebSocket's wait for a resume
            ids = []
            for value in range(40):
                ids.append(await write(to_first if value % 2 else to_second, metric_name, value))
            for stream in (on_first, on_second):
                events = await stream.wait_for(lambda es: len(es) >= 40)
                assert [e.data["metric"]["id"] for e in events] == ids
            over_ws = await ws_events(ws_on_second, 40)
            assert [e.data["metric"]["id"] for e in over_ws] == ids
            await asyncio.sleep(0.5)
            assert len(on_first.events) == len(on_second.events) == 40

    run(scenario())


def test_every_ingest_path_is_streamed(base_url: str, metric_name: str) -> None:
    async def scenario() -> None:
        async with (
            sse(base_url, f"name_prefix={metric_name}") as stream,
            httpx.AsyncClient(base_url=base_url, timeout=30) as client,
        ):
            line = f"{metric_name},host=a load=1.5"
            assert (await client.post("/write", content=line.encode())).status_code == 204
            batch = [{"name": metric_name, "value": n} for n in range(1500)]  # two log entries, one request
            assert (await client.post("/metrics", json=batch)).status_code == 201
            events = await stream.wait_for(lambda es: len(es) >= 1501)
            assert events[0].data["metric"]["name"].startswith(metric_name)
            assert values(events[1:]) == list(range(1500))

    run(scenario())


# --- resume, gap, lag


def test_resume_after_a_forced_disconnect_loses_and_repeats_nothing(base_url: str, metric_name: str) -> None:
    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            async with sse(base_url, f"name={metric_name}") as first:
                for value in range(10):
                    await write(client, metric_name, value)
                seen = (await first.wait_for(lambda es: len(es) >= 10))[:10]
            for value in range(10, 30):  # while nobody listens
                await write(client, metric_name, value)
            async with sse(base_url, f"name={metric_name}", {"last-event-id": seen[4].id or ""}) as resumed:
                for value in range(30, 35):
                    await write(client, metric_name, value)
                events = await resumed.wait_for(lambda es: len(es) >= 30)
                assert values(events) == list(range(5, 35))
            async with websockets.connect(ws_url(base_url, f"name={metric_name}")) as ws:
                await ws.send(orjson.dumps({"resume": events[-3].id}).decode())
                assert values(await ws_events(ws, 2)) == [33, 34]

    run(scenario())


def test_a_resume_older_than_the_log_gets_a_gap_then_what_is_held(
    server_factory: Callable[..., ServerProcess], metric_name: str
) -> None:
    server = server_factory(workers=1, APP_ENV="streamgap", STREAM_MAX_LEN="100")

    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            async with sse(server.base_url, f"name={metric_name}") as first:
                await write(client, metric_name, 0)
                oldest_seen = (await first.wait_for(lambda es: len(es) >= 1))[0]
            for value in range(1, 400):  # one entry each: MAXLEN ~ 100 trims the first
                await write(client, metric_name, value)
            async with sse(server.base_url, f"name={metric_name}", {"last-event-id": oldest_seen.id or ""}) as again:
                events = await again.wait_for(
                    lambda es: len(es) >= 2 and es[-1].data.get("metric", {}).get("value") == 399
                )
                assert events[0].event == "gap"
                assert events[0].data["oldest"] == events[1].id.split(":")[0] if events[1].id else False
                held = values(events[1:])
                assert held == list(range(400 - len(held), 400))
                assert 100 <= len(held) < 399

    run(scenario())


def test_a_subscriber_that_does_not_read_lags_and_skips_ahead_without_slowing_writers(
    server_factory: Callable[..., ServerProcess], metric_name: str
) -> None:
    server = server_factory(workers=1, APP_ENV="streamlag", STREAM_QUEUE_MAX="2000")

    async def scenario() -> None:
        async with (
            httpx.AsyncClient(base_url=server.base_url, timeout=30) as client,
            httpx.AsyncClient(base_url=server.base_url, timeout=httpx.Timeout(30, read=None)) as slow_client,
            slow_client.stream("GET", f"/metrics/stream?name={metric_name}") as slow,
            sse(server.base_url, f"name={metric_name}") as fast,
        ):
            assert slow.status_code == 200
            # Big events (~1 kB) fill the socket buffers between the server and the client that does not read.
            padding = [f"pad{n}:{'x' * 190}" for n in range(5)]
            started = time.monotonic()
            for round_ in range(80):
                batch = [{"name": metric_name, "tags": padding, "value": round_ * 500 + n} for n in range(500)]
                assert (await client.post("/metrics", json=batch)).status_code == 201
            write_seconds = time.monotonic() - started
            events = await fast.wait_for(lambda es: len(es) >= 40_000, 60)
            assert len(events) == 40_000
            assert {e.event for e in events} == {"point"}
            lagged = 0
            async for line in slow.aiter_lines():
                if line == "event: lagged":
                    lagged += 1
                if line.startswith("data:") and '"value":39999.0' in line:
                    break
            assert lagged >= 1
            assert write_seconds < 120  # a bound against a hang, not a timing target

    run(scenario())


# --- auth, caps, shutdown


@pytest.fixture(scope="module")
def guarded(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory(
        workers=1,
        APP_ENV="streamauth",
        AUTH_ENABLED="true",
        BOOTSTRAP_ADMIN_KEY=BOOTSTRAP,
        STREAM_MAX_PER_KEY="2",
        STREAM_MAX_PER_WORKER="3",
    )


def new_key(base_url: str, role: str) -> str:
    created = httpx.post(
        f"{base_url}/admin/keys", json={"role": role, "name": "streams"}, headers=bearer(BOOTSTRAP), timeout=10
    )
    assert created.status_code == 201, created.text
    return str(created.json()["key"])


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def test_streams_need_the_read_role_by_header_or_token(guarded: ServerProcess, metric_name: str) -> None:
    base = guarded.base_url
    reader, writer_key = new_key(base, "read"), new_key(base, "write")

    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            assert (await client.get("/metrics/stream")).status_code == 401
            assert (await client.get("/metrics/stream?token=made-up")).status_code == 401
            assert (await client.post("/metrics/stream/token")).status_code == 401
            issued = await client.post("/metrics/stream/token", headers=bearer(reader))
            assert issued.status_code == 201
            assert issued.json()["expires_in"] == 60
            token = issued.json()["token"]
            async with sse(base, f"name={metric_name}&token={token}") as by_token:
                await write_as(client, writer_key, metric_name, 1)
                assert values(await by_token.wait_for(lambda es: len(es) >= 1)) == [1]
            async with websockets.connect(ws_url(base, f"name={metric_name}&token={token}")) as ws:
                await asyncio.sleep(0.5)
                await write_as(client, writer_key, metric_name, 2)
                assert values(await ws_events(ws, 1)) == [2]
            with pytest.raises(websockets.ConnectionClosedError) as refused:
                async with websockets.connect(ws_url(base, f"name={metric_name}")) as ws:
                    await ws.recv()
            assert refused.value.rcvd is not None
            assert refused.value.rcvd.code == 4401
            key_id = reader.split("_")[1]  # tsk_<id>_<secret>
            assert (await client.delete(f"/admin/keys/{key_id}", headers=bearer(BOOTSTRAP))).status_code == 200
            await asyncio.sleep(1)  # past the workers' trust in a key they looked up (KEY_CACHE_SECONDS)
            assert (await client.get(f"/metrics/stream?token={token}")).status_code == 401  # revoked: its tokens too

    run(scenario())


async def write_as(client: httpx.AsyncClient, key: str, name: str, value: float) -> None:
    response = await client.post("/metrics", json={"name": name, "value": value}, headers=bearer(key))
    assert response.status_code == 201, response.text


def test_subscribers_are_capped_per_key_and_per_worker(guarded: ServerProcess) -> None:
    base = guarded.base_url
    first, second = new_key(base, "read"), new_key(base, "read")

    async def scenario() -> None:
        async with sse(base, "", bearer(first)), sse(base, "", bearer(first)):
            async with sse(base, "", bearer(first), expect=429):
                pass
            async with sse(base, "", bearer(second)), sse(base, "", bearer(second), expect=503):
                pass
        async with sse(base, "", bearer(first)):  # closed streams give their places back
            pass

    run(scenario())


def test_shutdown_says_bye_and_ends_every_stream(server_factory: Callable[..., ServerProcess]) -> None:
    server = server_factory(workers=2, APP_ENV="streambye", STREAM_RETRY_MS="1500")

    async def scenario() -> None:
        async with (
            sse(server.base_url) as one,
            sse(server.base_url) as two,
            websockets.connect(ws_url(server.base_url)) as ws,
        ):
            await asyncio.sleep(0.5)
            started = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            for stream in (one, two):
                await asyncio.wait_for(stream.ended.wait(), 15)
                assert [e.event for e in stream.events] == ["bye"]
                assert stream.events[0].data == {"detail": "server shutting down"}
            assert (await ws_events(ws, 1))[0].event == "bye"
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
            await asyncio.to_thread(server.process.wait, 15)
            assert time.monotonic() - started < 15  # well before the workers' kill timeout (30 s)

    run(scenario())


def test_an_sse_stream_starts_with_its_retry_and_sends_keep_alives(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory(workers=1, APP_ENV="streamkeep", STREAM_KEEPALIVE="1", STREAM_RETRY_MS="1500")
    with (
        httpx.Client(base_url=server.base_url, timeout=httpx.Timeout(10, read=5)) as http,
        http.stream("GET", "/metrics/stream") as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = []
        for line in response.iter_lines():
            lines.append(line)
            if Counter(lines)[": keep-alive"] >= 2:
                break
        assert lines[0] == "retry: 1500"
