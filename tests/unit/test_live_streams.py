"""Live streams without sockets: the stream query, events and their wire forms, rollups, and the hub's fan-out,
resume and lag policy over an in-memory change log."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import orjson
import pytest

from telemetry_server.errors import StreamsFull, SubscriberLimitReached, ValidationFailed
from telemetry_server.models.live_stream import (
    ChangeOp,
    Event,
    EventKind,
    Rollup,
    RollupFn,
    RollupFold,
    decode_change,
    encode_change,
    parse_event_id,
    parse_stream_query,
)
from telemetry_server.models.metric import Metric
from telemetry_server.ports import LogWindow
from telemetry_server.services.cache_dependency import PointChange
from telemetry_server.services.live_streams import StreamHub, StreamLimits


def change(name: str, value: float, tags: tuple[str, ...] = (), millis: int = 1_700_000_000_000):
    metric = Metric("id", name, tags, value, datetime.fromtimestamp(millis / 1000, UTC))
    return decode_change(encode_change(ChangeOp.CREATE, metric.to_json()))


def test_the_stream_query_reads_the_listing_filters_and_a_rollup() -> None:
    query = parse_stream_query([("name_prefix", "cpu."), ("tag", "b:2"), ("tag", "a:1"), ("value_gte", "5")])
    assert query.tags == ("a:1", "b:2")
    assert query.matches(change("cpu.load", 5, ("a:1", "b:2", "c:3")))
    assert not query.matches(change("cpu.load", 4.9, ("a:1", "b:2")))
    assert not query.matches(change("cpu.load", 6, ("a:1",)))
    assert not query.matches(change("mem.used", 6, ("a:1", "b:2")))
    rollup = parse_stream_query([("every", "10s"), ("fn", "max"), ("token", "t")]).rollup
    assert rollup == Rollup(10, RollupFn.MAX)
    with pytest.raises(ValidationFailed) as refused:
        parse_stream_query([("name", "a"), ("name_prefix", "b"), ("fn", "avg"), ("every", "2h")])
    assert {e.field for e in refused.value.errors} == {"name_prefix", "every"}


def test_events_have_an_sse_form_and_a_websocket_form() -> None:
    event = Event(EventKind.POINT, "1-0:2", b'{"op":"create"}')
    assert event.sse() == b'event: point\nid: 1-0:2\ndata: {"op":"create"}\n\n'
    assert orjson.loads(event.ws()) == {"event": "point", "id": "1-0:2", "data": {"op": "create"}}
    assert Event(EventKind.BYE, None, b"{}").sse() == b"event: bye\ndata: {}\n\n"


def test_event_ids_are_parsed_strictly() -> None:
    assert parse_event_id("1795865262656-0:3") == (1795865262656, 0, 3)
    for text in ("", "1-0", "1:0", "a-0:1", "1-0:x", "\u0661-0:1", "1-0:1" + "0" * 70):
        assert parse_event_id(text) is None


def test_a_rollup_folds_per_series_and_interval_and_sends_once_closed() -> None:
    fold = RollupFold(Rollup(10, RollupFn.AVG), grace_millis=1000)
    start = 1_700_000_000_000
    for value, tags in ((1, ("h:a",)), (3, ("h:a",)), (10, ("h:b",))):
        fold.add(change("cpu", value, tags, start + 500))
    assert fold.close(start + 10_500) == []  # within the grace
    closed = {tuple(orjson.loads(e.data)["tags"]): orjson.loads(e.data) for e in fold.close(start + 11_000)}
    assert closed[("h:a",)]["value"] == 2
    assert closed[("h:a",)]["count"] == 2
    assert closed[("h:b",)]["value"] == 10
    assert fold.close(start + 60_000) == []


class MemoryLog:
    """An in-memory change log: entries `<n>-0`, trimmed to `max_len`."""

    def __init__(self, max_len: int = 1000) -> None:
        self.entries: list[tuple[str, bytes]] = []
        self.added = 0
        self.max_len = max_len
        self.arrived = asyncio.Event()

    async def append(self, entries: Sequence[bytes]) -> None:
        for entry in entries:
            self.added += 1
            self.entries.append((f"{self.added}-0", entry))
        self.entries = self.entries[-self.max_len :]
        self.arrived.set()

    async def read_after(self, after: str, count: int, block_seconds: float) -> list[tuple[str, bytes]]:
        found = [e for e in self.entries if _n(e[0]) > _n(after)][:count]
        if not found:
            self.arrived.clear()
            await self.arrived.wait()
        return found

    async def replay(self, start: str, until: str, count: int) -> list[tuple[str, bytes]]:
        return [e for e in self.entries if _n(start) <= _n(e[0]) <= _n(until)][:count]

    async def window(self) -> LogWindow:
        oldest = self.entries[0][0] if self.entries else None
        return LogWindow(oldest, f"{self.added}-0", trimmed=self.added > len(self.entries))

    async def issue_token(self, key_id: str, seconds: int) -> str:
        return "token"

    async def redeem_token(self, token: str) -> str | None:
        return None


def _n(entry_id: str) -> int:
    return int(entry_id.split("-")[0])


def points(name: str, values: Sequence[float]) -> list[PointChange]:
    return [PointChange(None, Metric(f"id{v}", name, (), v, datetime(2026, 1, 1, tzinfo=UTC))) for v in values]


def taken_values(events: Sequence[Event] | None) -> list[float]:
    return [orjson.loads(e.data)["metric"]["value"] for e in events or () if e.kind is EventKind.POINT]


def test_the_hub_fans_out_resumes_and_skips_a_lagging_subscriber_ahead() -> None:
    async def scenario() -> None:
        log = MemoryLog()
        hub = StreamHub(log, StreamLimits(per_worker=3, per_key=2, queue_max=3))
        reader = asyncio.ensure_future(hub.run())
        await asyncio.sleep(0)
        cpu = hub.subscribe(parse_stream_query([("name", "cpu")]), "k1")
        slow = hub.subscribe(parse_stream_query([]), "k1")
        with pytest.raises(SubscriberLimitReached):
            hub.subscribe(parse_stream_query([]), "k1")
        await hub.publish(points("cpu", [1, 2]) + points("mem", [9]))
        await asyncio.sleep(0.01)
        first = await cpu.next(1)
        assert taken_values(first) == [1, 2]
        await hub.publish(points("cpu", [3]))
        await hub.publish(points("cpu", [4]))  # slow has 5 waiting now: past its 3
        await asyncio.sleep(0.01)
        assert [e.kind for e in await slow.next(1) or []] == [EventKind.LAGGED]
        assert taken_values(await cpu.next(1)) == [3, 4]

        resumed = hub.subscribe(parse_stream_query([("name", "cpu")]), "k2")
        assert first is not None
        await resumed.start(first[0].id)
        assert taken_values(await resumed.next(1)) == [2, 3, 4]
        with pytest.raises(StreamsFull):
            hub.subscribe(parse_stream_query([]), "k3")
        resumed.close()
        hub.close()
        assert [e.kind for e in await cpu.next(1) or []] == [EventKind.BYE]
        assert await cpu.next(1) is None
        reader.cancel()

    asyncio.run(scenario())


def test_a_resume_from_before_the_trimmed_log_starts_with_a_gap() -> None:
    async def scenario() -> None:
        log = MemoryLog(max_len=2)
        hub = StreamHub(log, StreamLimits())
        reader = asyncio.ensure_future(hub.run())
        await asyncio.sleep(0)
        for value in range(5):
            await hub.publish(points("cpu", [value]))
        await asyncio.sleep(0.01)
        late = hub.subscribe(parse_stream_query([]), "k")
        await late.start("1-0:0")
        gap = await late.next(1)
        assert gap is not None
        assert [e.kind for e in gap] == [EventKind.GAP]
        assert orjson.loads(gap[0].data)["oldest"] == "4-0"
        assert taken_values(await late.next(1)) == [3, 4]
        reader.cancel()

    asyncio.run(scenario())
