"""TwoLevelCache: a per-worker L1 in front of the shared Redis L2; an L1 hit costs no Redis round trip."""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import orjson

from telemetry_server.models.metric import Metric
from telemetry_server.ports import Lookup, SharedCache
from telemetry_server.services.cache_dependency import PointChange, change_dependencies
from telemetry_server.services.listing_page import ListedPoint, ListingPage
from telemetry_server.services.local_cache import Change, LocalCache
from telemetry_server.services.stats_records import CacheLevel, Stats

# A write sends the points it changed along with its keys up to this many; a larger one (a batch) drops what
# it touches instead, as its message would be large and every worker would apply it to every page it touches.
MAX_SENT_CHANGES = 64


class ChangeOrder:
    """Which messages' changes this L1 may apply: those whose write had seen every earlier message that named
    the same points.

    Two writes of one point (two PUTs of an id, or a PUT of an id guessed before its POST was announced) can
    reach the database in one order and the channel in the other; applied in the channel's order, the earlier
    write's change would undo the later one's. Each write says which message its worker had received last when
    it began (`since`). When a message already received here names one of its points and came after `since`,
    the two writes overlapped, and this one's changes are not applied (what it touched is dropped). Otherwise
    every earlier write of its points was announced, so stored, before it began: changes that are applied are
    applied in the database's order. Points are remembered up to `remembered` of them; a write that began
    before the oldest one forgotten is dropped too.
    """

    def __init__(self, remembered: int = 16_384) -> None:
        self._remembered = remembered
        self.last: int | None = None  # the last message received since (re)subscribing
        self._floor = 0  # messages up to this one were not all received here (or are forgotten)
        self._points: dict[str, int] = {}  # point id -> the last message that named it, oldest first

    def restart(self) -> None:
        """Messages may have been missed: what was seen before says nothing about what comes."""
        self.last = None
        self._points.clear()

    def receive(self, number: int, since: int | None, ids: Iterable[str]) -> bool:
        """Record message `number`, naming points `ids`; whether its changes may be applied."""
        if self.last is None or number <= self.last:  # the first since subscribing, or the counter restarted
            self.restart()
            self._floor = number - 1
        self.last = number
        named = list(ids)
        ordered = False
        if since is not None and self._floor <= since < number:
            ordered = all(self._points.get(id_, 0) <= since for id_ in named)
        for id_ in named:
            self._points.pop(id_, None)
            self._points[id_] = number
        while len(self._points) > self._remembered:
            self._floor = max(self._floor, self._points.pop(next(iter(self._points))))
        return ordered


class TwoLevelCache:
    """A write updates the listing pages it changes, and drops the other entries depending on it, in every
    worker's L1 through Redis pub/sub, this worker's included, before it is acknowledged.

    Every L1 applies writes in the channel's order, so a write waits for its own message (its echo) rather than
    updating this worker's L1 ahead of messages already on their way to it. The L1 is trusted only while the
    subscription is live: when it drops, the L1 is emptied and bypassed until the worker is subscribed again,
    so a missed message never leaves a stale entry behind.
    """

    def __init__(self, local: LocalCache, shared: SharedCache, stats: Stats, echo_timeout_seconds: float = 1.0) -> None:
        self._local = local
        self._shared = shared
        self._l1_counts = stats.cache[CacheLevel.L1]
        self._l2_counts = stats.cache[CacheLevel.L2]
        self._subscribed = False
        self._order = ChangeOrder()
        self._origin = secrets.token_hex(8)  # tells this worker's messages from the others'
        self._notes = itertools.count(1)
        # Writes of this worker waiting for their message, each with its changes as the L1 applies them (so its
        # own message need not be read back).
        self._echoes: dict[int, tuple[asyncio.Future[bool], list[Change]]] = {}
        self._echo_timeout = echo_timeout_seconds

    @property
    def local_live(self) -> bool:
        return self._subscribed and self._local.enabled

    async def lookup(self, dependency: str, query_key: str) -> Lookup:
        version = None
        if self.local_live:
            value = self._local.get(query_key)
            self._l1_counts.count(value is not None)
            if value is not None:
                return Lookup(value, b"", dependency)
            version = self._local.version(dependency)
        found = await self._shared.lookup(dependency, query_key)
        if found.generation:  # Redis answered
            self._l2_counts.count(found.value is not None)
        if found.value is not None and version is not None:
            self._local.put(query_key, dependency, found.value, version)
        return replace(found, dependency=dependency, local_version=version)

    async def store(self, query_key: str, lookup: Lookup, value: bytes) -> None:
        if lookup.local_version is not None and self.local_live:
            self._local.put(query_key, lookup.dependency, value, lookup.local_version)
        await self._shared.store(query_key, lookup, value)

    async def store_page(self, query_key: str, lookup: Lookup, page: ListingPage) -> None:
        """Like `store`, but this worker's L1 keeps the page, for writes to update."""
        if lookup.local_version is not None and self.local_live:
            self._local.put_page(query_key, lookup.dependency, page, lookup.local_version)
        await self._shared.store(query_key, lookup, page.body)

    def write_mark(self) -> int | None:
        """Taken by a write before it reaches the database, and given back to `record`."""
        return self._order.last if self.local_live else None

    async def record(self, changes: Sequence[PointChange], since: int | None) -> None:
        """The changes of a write, stored and not yet acknowledged, that began at `write_mark()` == `since`."""
        dependencies = change_dependencies(changes)
        if since is None or len(changes) > MAX_SENT_CHANGES:
            await self.invalidate(dependencies)
            return
        number = next(self._notes)
        echo: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        listed = [(_listed(change.before), _listed(change.after)) for change in changes]
        self._echoes[number] = (echo, listed)
        try:
            if await self._shared.invalidate(dependencies, write_note(self._origin, number, since, listed)):
                if not echo.done():
                    async with asyncio.timeout(self._echo_timeout):
                        await echo
                if echo.result():
                    return
        except TimeoutError:
            pass
        finally:
            self._echoes.pop(number, None)
        self._local.invalidate(dependencies)  # unannounced: dropping is exact in any order

    async def invalidate(self, dependencies: Sequence[str]) -> None:
        """Drop what depends on `dependencies`, in every worker's L1 and in Redis."""
        self._local.invalidate(dependencies)
        await self._shared.invalidate(dependencies)

    def on_message(self, number: int, dependencies: list[str], note: bytes) -> None:
        """A message on the channel, from any worker (this one's included)."""
        if self._order.last is not None and number <= self._order.last:
            self._local.clear()  # the counter restarted: to be safe, forget what was built on the old numbers
        origin, sent, since, points = read_note(note)
        echo = self._echoes.get(sent) if origin == self._origin else None
        changes = echo[1] if echo is not None else read_points(points)  # a writer holds its own changes
        ids = (point.id for change in changes for point in change if point is not None)
        if self._order.receive(number, since, ids) and changes:
            self._local.apply(dependencies, changes)
        else:
            self._local.invalidate(dependencies)
        if echo is not None and not echo[0].done():
            echo[0].set_result(True)

    def on_subscription(self, live: bool) -> None:
        if live != self._subscribed:
            self._local.clear()
        self._order.restart()
        if not live:
            for echo, _ in self._echoes.values():
                if not echo.done():
                    echo.set_result(False)
        self._subscribed = live

    async def ping(self) -> bool:
        return await self._shared.ping()

    async def aclose(self) -> None:
        await self._shared.aclose()


def write_note(origin: str, number: int, since: int, changes: Sequence[Change]) -> bytes:
    """What a write tells every L1 beside its keys: `<origin> <number> <since>`, a line with who sent it and what
    it had seen, then the points it changed as JSON pairs (before, after) of each point's listing JSON."""
    points = [[None if p is None else orjson.Fragment(p.json) for p in change] for change in changes]
    return f"{origin} {number} {since}\n".encode() + orjson.dumps(points)


def read_note(note: bytes) -> tuple[str | None, int, int | None, bytes]:
    """(origin, note number, since, the points still as JSON) of a note; (None, 0, None, b"") for a note absent
    or not understood."""
    header, _, points = note.partition(b"\n")
    try:
        origin, number, since = header.decode().split(" ")
        return origin, int(number), int(since), points
    except ValueError:  # an empty note among them
        return None, 0, None, b""


def read_points(points: bytes) -> list[Change]:
    """The changes a note carries; none (so only its keys are dropped) when they are not understood."""
    if not points:
        return []
    try:
        return [(_parsed(before), _parsed(after)) for before, after in orjson.loads(points)]
    except (ValueError, KeyError, TypeError):
        return []


def _listed(metric: Metric | None) -> ListedPoint | None:
    return None if metric is None else ListedPoint.of(metric)


def _parsed(doc: Any) -> ListedPoint | None:
    return None if doc is None else ListedPoint.from_json(doc)
