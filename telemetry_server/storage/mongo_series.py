"""SeriesRegistry: the `series` collection, and this worker's SeriesIndex of it, kept current.

```
series   {_id: int, name, tags: [as sent], key}    unique {key}
counters {_id: "series" | "writer", n: int}         ids handed out so far
```

Series ids are small ints from a counter, because every point id and every bucket repeats them. A write
creates its series in MongoDB before its points, so once a write is acknowledged its series is in the
collection; `refresh` brings the index up to date with everything created before it was called, which is
what makes a filter resolved on any worker, of any instance, see every acknowledged write.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Iterable
from typing import Any

from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from telemetry_server.errors import SeriesLimitReached, StorageUnavailable
from telemetry_server.storage.mongo import Document, already_there, unavailable_when_unreachable
from telemetry_server.storage.series_index import Series, SeriesIndex, series_key

SeriesKey = tuple[str, tuple[str, ...]]
# An id taken from the counter but not seen in the collection yet may be a series another worker is inserting
# right now; it is looked for again at every refresh, until it is this old (its writer failed or lost a race).
_HOLE_SECONDS = 60.0
_TAKE_ATTEMPTS = 3
# Series per reply of a load: the engine's default (16 MiB after the first 101) handed a first load of 100k series
# over in one reply, decoded into a list at once, which raised the worker's RSS for good (bench.series_memory).
_READ_BATCH = 1000


class SeriesRegistry:
    def __init__(self, database: AsyncDatabase[Document], max_series: int) -> None:
        self.index = SeriesIndex()
        self._series = database["series"]
        self._counters = database["counters"]
        self._max_series = max_series
        self._max_seen = 0
        self._holes: dict[int, float] = {}  # id -> when it was first missed
        self._one_poll = asyncio.Lock()
        self._next: asyncio.Future[None] | None = None

    async def ensure_indexes(self) -> None:
        async with unavailable_when_unreachable("creating series indexes"):
            await self._series.create_indexes([IndexModel([("key", ASCENDING)], name="key", unique=True)])

    async def load(self) -> None:
        """Read every series (at start); later changes come in through `refresh`."""
        await self._read({})

    async def name(self, ids: Iterable[int]) -> None:
        """Put the series `ids` in the index, read by id: a page without a filter names only its own series, and
        need not wait for the whole index (a first `refresh` reads every series: seconds for 100k of them)."""
        missing = [id_ for id_ in ids if id_ not in self.index]
        if not missing:
            return
        async with unavailable_when_unreachable("read of series"):
            async for doc in self._series.find({"_id": {"$in": missing}}, {"key": 0}):
                self.index.add(Series(doc["_id"], doc["name"], tuple(doc["tags"])))

    async def refresh(self) -> None:
        """Return once the index holds every series created before this call.

        Callers share polls: one that arrives while a poll waits for its turn joins it (it has not been sent
        yet, so it will see the caller's series); one that arrives after it was sent waits for the next.
        """
        if self._next is None:
            # In a context of its own: a shared poll must not run under the time limit of the caller that happened
            # to start it (pymongo.timeout is a context variable), or that limit would fail every caller joined.
            poll = self._poll_in_turn()
            self._next = asyncio.get_running_loop().create_task(poll, context=contextvars.Context())
        await asyncio.shield(self._next)

    async def _poll_in_turn(self) -> None:
        async with self._one_poll:
            self._next = None
            await self._poll()

    async def _poll(self) -> None:
        now = time.monotonic()
        self._holes = {id_: seen for id_, seen in self._holes.items() if now - seen < _HOLE_SECONDS}
        query: Document = {"_id": {"$gt": self._max_seen}}
        if self._holes:
            query = {"$or": [query, {"_id": {"$in": list(self._holes)}}]}
        await self._read(query)

    async def _read(self, query: Document) -> None:
        # PERF: each series goes into the index as it arrives. Holding every document of a first load in a list
        # first raised the worker's RSS by 92 MB for 100k series, against 64 MB streamed (bench.series_memory).
        now = time.monotonic()
        top = self._max_seen
        async with unavailable_when_unreachable("read of series"):
            async for doc in self._series.find(query, {"key": 0}, batch_size=_READ_BATCH):
                self.index.add(Series(doc["_id"], doc["name"], tuple(doc["tags"])))
                self._holes.pop(doc["_id"], None)
                top = max(top, doc["_id"])
        for missing in range(self._max_seen + 1, top):
            if missing not in self.index:
                self._holes.setdefault(missing, now)
        self._max_seen = max(self._max_seen, top)

    async def ids_for(self, keys: Iterable[SeriesKey]) -> dict[SeriesKey, int]:
        """The series id of each (name, tags), creating the series that do not exist yet."""
        wanted = set(keys)
        missing = [key for key in wanted if self.index.find(*key) is None]
        if missing:
            await self.refresh()  # another worker may have created them
            missing = [key for key in missing if self.index.find(*key) is None]
        if missing:
            await self._create(missing)
        ids: dict[SeriesKey, int] = {}
        for key in wanted:
            id_ = self.index.find(*key)
            assert id_ is not None
            ids[key] = id_
        return ids

    async def _create(self, keys: list[SeriesKey]) -> None:
        if len(self.index) + len(keys) > self._max_series:
            raise SeriesLimitReached(self._max_series)
        first = await self._take("series", len(keys))
        docs: list[Document] = [
            {"_id": first + offset, "name": name, "tags": list(tags), "key": series_key(name, tags)}
            for offset, (name, tags) in enumerate(keys)
        ]
        taken_by_others = False
        async with unavailable_when_unreachable("creation of series"):
            try:
                await self._series.insert_many(docs, ordered=False)
            except BulkWriteError as exc:
                if already_there(exc) is None:
                    raise
                taken_by_others = True
        if taken_by_others:  # another worker created some of them first: theirs are the ids
            await self._read({"key": {"$in": [doc["key"] for doc in docs]}})
        for doc in docs:
            if self.index.find(doc["name"], tuple(doc["tags"])) is None:
                self.index.add(Series(doc["_id"], doc["name"], tuple(doc["tags"])))

    async def writer_id(self) -> int:
        """A writer id no other store instance has had (the high half of the sequence numbers it issues)."""
        return await self._take("writer", 1)

    async def names(self, prefix: str, limit: int) -> list[str]:
        """Metric names held, for autocompletion: current with every acknowledged write, as filters are."""
        await self.refresh()
        return self.index.names_with_prefix(prefix, limit)

    async def tags(self, name: str, prefix: str, limit: int) -> list[str]:
        await self.refresh()
        return self.index.tags_of(name, prefix, limit)

    async def _take(self, counter: str, count: int) -> int:
        """The first of `count` fresh numbers from `counter` (numbers start at 1)."""
        for _ in range(_TAKE_ATTEMPTS):
            async with unavailable_when_unreachable(f"{counter} counter"):
                doc: dict[str, Any] | None = await self._counters.find_one_and_update(
                    {"_id": counter}, {"$inc": {"n": count}}, upsert=True, return_document=ReturnDocument.AFTER
                )
            if doc is not None:
                return int(doc["n"]) - count + 1
            # No document after an upsert: seen from the engine restarted under load (a retried write answered
            # empty). Numbers the first try may have taken stay unused, which costs nothing: ask again.
        raise StorageUnavailable(f"MongoDB did not answer the {counter} counter's increment")
