"""StreamHub: every acknowledged write appended to the shared change log, and one worker's live-stream
subscribers fed from that log by one reader task."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from telemetry_server.errors import (
    FieldError,
    StorageUnavailable,
    StreamsFull,
    SubscriberLimitReached,
    ValidationFailed,
)
from telemetry_server.models.live_stream import (
    BYE,
    Change,
    ChangeOp,
    Event,
    EventKind,
    Position,
    RollupFold,
    StreamQuery,
    decode_change,
    encode_change,
    entry_position,
    event_id,
    gap_event,
    lagged_event,
    parse_event_id,
)
from telemetry_server.ports import ChangeLog
from telemetry_server.services.cache_dependency import PointChange

log = logging.getLogger("telemetry_server.streams")

# A log entry holds up to this many changes: a batch of 10,000 points is 10 entries sent in one round trip, and
# no entry grows past a few hundred kilobytes.
ENTRY_CHANGES = 1000
# The reader takes up to this many entries per read, and waits this long for one before reading again.
_READ_ENTRIES = 256
_BLOCK_SECONDS = 5.0
# After a failed read the reader tries again this often.
_RETRY_SECONDS = 1.0
# A resume is replayed this many entries at a time.
_REPLAY_ENTRIES = 100
# A rollup subscriber's open intervals are checked this often.
_ROLLUP_TICK_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class StreamLimits:
    per_worker: int = 2000
    per_key: int = 100
    queue_max: int = 10_000  # events waiting to be sent to one subscriber
    disconnect_lagging: bool = False  # past queue_max: False skips ahead (a `lagged` event), True ends the stream
    keepalive_seconds: float = 15.0


class Delivery(NamedTuple):
    position: Position
    event: Event
    change: Change


class StreamHub:
    """`publish` is the write path's hook; `run` is the worker's one reader; `subscribe` opens a subscription."""

    def __init__(self, changes: ChangeLog, limits: StreamLimits, clock: Callable[[], float] = time.time) -> None:
        self._log = changes
        self.limits = limits
        self.clock = clock
        self._groups: dict[tuple[object, ...], set[Subscription]] = {}
        self._by_key: Counter[str] = Counter()
        self._count = 0
        self._position: str | None = None  # the last entry fanned out; None until the reader has started
        self._closing = False
        self._unlogged = 0  # changes acknowledged while the log could not take them

    async def publish(self, changes: Sequence[PointChange]) -> None:
        """Append a write's changes once they are stored, before the write is acknowledged: a client that waits
        for its acknowledgement before writing again sees its writes streamed in that order, by every worker.
        The log is written whether or not anyone subscribes: resuming needs it (one command per write)."""
        lines = [line for change in changes if (line := _encoded(change)) is not None]
        if not lines:
            return
        entries = [b"\n".join(lines[n : n + ENTRY_CHANGES]) for n in range(0, len(lines), ENTRY_CHANGES)]
        try:
            await self._log.append(entries)
        except StorageUnavailable as exc:
            # The write is stored and is acknowledged; only its stream events are lost, and every stream is
            # told so with a `gap` once the reader reads again.
            if not self._unlogged:
                log.warning("writes are not streamed while the change log is unreachable: %s", exc.detail)
            self._unlogged += len(lines)

    async def run(self) -> None:
        """The worker's one reader of the change log, until cancelled: fans each entry out to the subscribers."""
        position: str | None = None
        interrupted = False
        while True:
            try:
                if position is None:
                    position = (await self._log.window()).last
                    self._position = position
                entries = await self._log.read_after(position, _READ_ENTRIES, _BLOCK_SECONDS)
            except StorageUnavailable as exc:
                if not interrupted:
                    log.warning("live streams paused: %s", exc.detail)
                interrupted = True
                await asyncio.sleep(_RETRY_SECONDS)
                continue
            if interrupted or self._unlogged:
                interrupted, self._unlogged = False, 0
                self._tell_all(gap_event(None, "the change log was unreachable: some writes may be missing"))
            if entries:
                position = entries[-1][0]
                self._fan_out(entries)

    def subscribe(self, query: StreamQuery, client: str) -> Subscription:
        """Registered at once, at the reader's position: nothing read from now on is missed."""
        limits = self.limits
        if self._closing or self._position is None:
            raise StorageUnavailable("live streams are not available yet" if not self._closing else "shutting down")
        if self._count >= limits.per_worker:
            raise StreamsFull(f"this worker serves {limits.per_worker} streams (STREAM_MAX_PER_WORKER)")
        if self._by_key[client] >= limits.per_key:
            raise SubscriberLimitReached(limits.per_key)
        subscription = Subscription(self, query, client, self._position)
        self._groups.setdefault(query.filters, set()).add(subscription)
        self._by_key[client] += 1
        self._count += 1
        return subscription

    async def issue_token(self, key_id: str, seconds: int) -> str:
        """A token that opens streams as `key_id` for `seconds` (auth/guard.py redeems it)."""
        return await self._log.issue_token(key_id, seconds)

    def close(self) -> None:
        """Shutdown: every stream is sent `bye` and ends; no new one opens."""
        self._closing = True
        for group in self._groups.values():
            for subscription in group:
                subscription.end(BYE)

    def _remove(self, subscription: Subscription) -> None:
        group = self._groups.get(subscription.query.filters)
        if group is None or subscription not in group:
            return
        group.discard(subscription)
        if not group:
            del self._groups[subscription.query.filters]
        self._by_key[subscription.client] -= 1
        if not self._by_key[subscription.client]:
            del self._by_key[subscription.client]
        self._count -= 1

    def _tell_all(self, event: Event) -> None:
        for group in self._groups.values():
            for subscription in group:
                subscription.tell(event)

    def _fan_out(self, entries: Sequence[tuple[str, bytes]]) -> None:
        self._position = entries[-1][0]
        if not self._groups:
            return
        deliveries = list(_deliveries(entries))
        # PERF: subscribers that filter alike share one match per change and one list of events.
        for group in self._groups.values():
            query = next(iter(group)).query
            matched = [delivery for delivery in deliveries if query.matches(delivery.change)]
            if matched:
                for subscription in group:
                    subscription.offer(matched)

    async def replay(self, after: Position, until: str, query: StreamQuery) -> tuple[list[Delivery], Position | None]:
        """A page of the changes the log holds after `after`, up to the entry `until`, that `query` matches; and
        where the next page starts (None: `until` is reached)."""
        entries = await self._log.replay(f"{after[0]}-{after[1]}", until, _REPLAY_ENTRIES)
        deliveries = [delivery for delivery in _deliveries(entries) if delivery.position > after]
        if len(entries) < _REPLAY_ENTRIES or entries[-1][0] == until or not deliveries:
            return [d for d in deliveries if query.matches(d.change)], None
        return [d for d in deliveries if query.matches(d.change)], deliveries[-1].position

    async def resume_at(self, resume: Position) -> tuple[Event | None, Position | None]:
        """Where a resume after `resume` starts (None: nothing to replay), after a `gap` event when the log no
        longer holds everything that followed it (trimmed past STREAM_MAX_LEN, or reset)."""
        window = await self._log.window()
        if resume[:2] > entry_position(window.last)[:2]:
            detail = "the change log does not hold this event id (it was reset): some writes may be missing"
            return gap_event(window.oldest, detail), None
        if window.oldest is None:
            return None, None
        oldest = entry_position(window.oldest)
        # Entries trimmed away all came before the oldest held: a resume from before it may have lost some (or,
        # had it seen the very last one trimmed, none: the gap then says "may").
        if window.trimmed and resume[:2] < oldest[:2]:
            detail = "the change log no longer holds every event after this id (STREAM_MAX_LEN)"
            return gap_event(window.oldest, detail), oldest
        return None, resume


def _encoded(change: PointChange) -> bytes | None:
    if change.before is None and change.after is not None:
        return encode_change(ChangeOp.CREATE, change.after.to_json())
    if change.after is not None:
        return encode_change(ChangeOp.UPDATE, change.after.to_json())
    if change.before is not None:
        return encode_change(ChangeOp.DELETE, change.before.to_json())
    return None


def _deliveries(entries: Sequence[tuple[str, bytes]]) -> list[Delivery]:
    out = []
    for entry_id, payload in entries:
        millis, _, sequence = entry_id.partition("-")
        entry = (int(millis), int(sequence))
        for index, line in enumerate(payload.split(b"\n")):
            change = decode_change(line)
            out.append(Delivery((*entry, index), Event(EventKind.POINT, event_id(entry_id, index), line), change))
    return out


class Subscription:
    """One stream's queue: the reader offers it events, its connection takes them with `next`."""

    def __init__(self, hub: StreamHub, query: StreamQuery, client: str, position: str) -> None:
        self._hub = hub
        self.query = query
        self.client = client
        self._joined_at = position  # the reader's position when it joined: live events are those after it
        self._queue: deque[Sequence[Delivery] | Event] = deque()
        self._pending = 0
        self._wake = asyncio.Event()
        self._ended = False
        self._skip_until: Position | None = None  # a resume ahead of this worker's reader: already sent
        self._replay_from: Position | None = None
        self._head: list[Event] = []  # a resume's `gap`, sent first
        self._fold = RollupFold(query.rollup) if query.rollup is not None else None

    async def start(self, resume: str | None) -> None:
        """Resume after the event id `resume` (Last-Event-ID, or a WebSocket's `resume`), or start now."""
        if resume is None:
            return
        position = parse_event_id(resume)
        if position is None:
            raise ValidationFailed([FieldError("Last-Event-ID", "is not an event id this server sent")])
        gap, start = await self._hub.resume_at(position)
        if gap is not None:
            self._head.append(gap)
        if start is None:
            return
        if start[:2] > entry_position(self._joined_at)[:2]:
            self._skip_until = start  # this worker's reader has yet to reach what the client already had
        else:
            self._replay_from = start

    def offer(self, deliveries: Sequence[Delivery]) -> None:
        """From the reader: queue what matched, or fold it into the rollup; past the bound, skip or end."""
        if self._ended:
            return
        if self._skip_until is not None:
            deliveries = [d for d in deliveries if d.position > self._skip_until]
            if not deliveries:
                return
            self._skip_until = None
        if self._fold is not None:
            for delivery in deliveries:
                self._fold.add(delivery.change)
            return
        limits = self._hub.limits
        # Lagging is having STREAM_QUEUE_MAX events still waiting, not being offered a large batch: a subscriber
        # that keeps up takes a batch of any size whole (bounded by the batch limits, INGEST_MAX_POINTS).
        if self._pending >= limits.queue_max:
            skipped = self._pending + len(deliveries)
            if limits.disconnect_lagging:
                self.end(lagged_event(skipped))
                return
            self._queue = deque(e for e in self._queue if isinstance(e, Event) and e.kind is not EventKind.LAGGED)
            self._queue.append(lagged_event(skipped))
            self._pending = 0
        else:
            self._queue.append(deliveries)
            self._pending += len(deliveries)
        self._wake.set()

    def tell(self, event: Event) -> None:
        if not self._ended:
            self._queue.append(event)
            self._wake.set()

    def end(self, last: Event) -> None:
        """`last` is the stream's last event (`bye`, or `lagged` when lagging disconnects)."""
        if not self._ended:
            self._queue.append(last)
            self._ended = True
            self._wake.set()

    async def next(self, wait_seconds: float) -> list[Event] | None:
        """What to send next; [] when nothing came within `wait_seconds` (time for a keep-alive); None once
        the stream has ended and everything was taken. A resume's replay comes before the live events."""
        if self._head:
            events, self._head = self._head, []
            return events
        while self._replay_from is not None:
            deliveries, self._replay_from = await self._hub.replay(self._replay_from, self._joined_at, self.query)
            if self._fold is not None:
                for delivery in deliveries:
                    self._fold.add(delivery.change)
            elif deliveries:
                return [delivery.event for delivery in deliveries]
        deadline = time.monotonic() + wait_seconds
        while not self._queue:
            if self._ended:
                return None
            if self._fold is not None and (closed := self._fold.close(int(self._hub.clock() * 1000))):
                return closed
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            self._wake.clear()
            try:
                async with asyncio.timeout(min(left, _ROLLUP_TICK_SECONDS) if self._fold is not None else left):
                    await self._wake.wait()
            except TimeoutError:
                pass
        taken: list[Event] = []
        while self._queue:
            item = self._queue.popleft()
            if isinstance(item, Event):
                taken.append(item)
            else:
                self._pending -= len(item)
                taken += [delivery.event for delivery in item]
        return taken

    def close(self) -> None:
        """The connection is gone: forget the subscription."""
        self._ended = True
        self._queue.clear()
        self._hub._remove(self)
