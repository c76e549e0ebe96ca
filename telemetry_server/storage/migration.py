"""The migration from one document per point (`metrics`) to series and buckets: chunked, resumable, idempotent.

```
metrics   {_id: ObjectId, name, tags, value, timestamp}     read only, in _id order; dropped by --drop-old
migration {_id: "metrics", writer, last?, migrated, pending?: {upto, count}, finished_at?}
legacy    {_id: ObjectId, series, millis, seq}              one per migrated point: where its old id now lives
```

Each chunk's work is named before it is done: `pending` pins the chunk (its last `_id`) and its sequence numbers
come from the writer id and the points migrated before it, so its buckets get the same `_id`s and contents on
every attempt. A chunk redone after an interruption therefore hits duplicate keys instead of adding points, and
its legacy rows point at the slots its buckets really hold.
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from telemetry_server.models.point_id import MAX_SERIES
from telemetry_server.models.timestamps import to_millis
from telemetry_server.storage.bucket_columns import Slot, bucket_document, seal
from telemetry_server.storage.mongo import Document, already_there, unavailable_when_unreachable
from telemetry_server.storage.mongo_buckets import INDEXES as BUCKET_INDEXES
from telemetry_server.storage.mongo_series import SeriesKey, SeriesRegistry

MIGRATION_ID = "metrics"
DEFAULT_CHUNK = 10_000
_COUNTER_LIMIT = 2**32  # the low half of a sequence number: points one writer id can number


class MigrationRefused(Exception):
    """The migration cannot go on, or `--drop-old` found counts that do not match; the message says why."""


@dataclass(frozen=True, slots=True)
class Progress:
    done: int
    total: int
    done_this_run: int
    elapsed_s: float

    def describe(self) -> str:
        rate = self.done_this_run / self.elapsed_s if self.elapsed_s > 0 else 0.0
        share = f" ({self.done / self.total:.1%})" if self.total else ""
        left = max(self.total - self.done, 0)
        eta = f", ETA {_duration(left / rate)}" if rate > 0 and left else ""
        return f"migrated {self.done:,} / {self.total:,} points{share}, {rate:,.0f} points/s{eta}"


def _duration(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


@dataclass(frozen=True, slots=True)
class Outcome:
    migrated_now: int
    migrated: int  # every point the migration has written, this run and earlier ones
    already_done: bool


@dataclass(frozen=True, slots=True)
class Chunk:
    """What one chunk of old documents becomes: bucket documents (with their _ids) and legacy rows."""

    buckets: list[Document]
    legacy: list[Document]


def bucket_id(chunk_last: ObjectId, series: int, ordinal: int) -> ObjectId:
    """The _id of a chunk's `ordinal`-th bucket of `series`: the same on every attempt at the chunk.

    It keeps the chunk's creation second in front (as an ObjectId would) and a digest of the rest; a live
    ObjectId shares those 8 bytes with it only by a 2**-64 chance.
    """
    digest = hashlib.blake2b(
        chunk_last.binary + series.to_bytes(4, "big") + ordinal.to_bytes(4, "big"), digest_size=8
    ).digest()
    return ObjectId(chunk_last.binary[:4] + digest)


def build_chunk(docs: Sequence[Mapping[str, Any]], series_ids: Mapping[SeriesKey, int], first_seq: int) -> Chunk:
    """The buckets and legacy rows of old documents given in _id order; the i-th takes sequence `first_seq + i`.

    Every slot keeps its old id as its alias, so listings keep answering the id the point was given.
    """
    by_series: dict[int, list[Slot]] = defaultdict(list)
    legacy: list[Document] = []
    for offset, doc in enumerate(docs):
        series = series_ids[series_key_of(doc)]
        millis, seq = to_millis(_aware(doc["timestamp"])), first_seq + offset
        by_series[series].append(Slot(millis, float(doc["value"]), seq, str(doc["_id"])))
        legacy.append({"_id": doc["_id"], "series": series, "millis": millis, "seq": seq})
    chunk_last: ObjectId = docs[-1]["_id"]
    buckets: list[Document] = []
    for series in sorted(by_series):
        for ordinal, slots in enumerate(seal(by_series[series])):
            buckets.append({"_id": bucket_id(chunk_last, series, ordinal), **bucket_document(series, slots)})
    return Chunk(buckets, legacy)


def _aware(moment: datetime) -> datetime:
    # BSON dates are UTC; a client made without tz_aware hands them over naive.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def series_key_of(doc: Mapping[str, Any]) -> SeriesKey:
    return doc["name"], tuple(doc.get("tags") or ())


class MetricsMigration:
    """Moves `metrics` into series, buckets and legacy rows, one chunk at a time, resuming where it stopped."""

    def __init__(
        self,
        database: AsyncDatabase[Document],
        chunk_size: int = DEFAULT_CHUNK,
        report: Callable[[Progress], None] = lambda _: None,
        report_every_s: float = 2.0,
    ) -> None:
        if chunk_size < 1:
            raise ValueError("a chunk holds at least one document")
        self._metrics = database["metrics"]
        self._state = database["migration"]
        self._buckets = database["buckets"]
        self._legacy = database["legacy"]
        # Every series the old layout has is kept: SERIES_MAX bounds what new writes may create, not history.
        self._registry = SeriesRegistry(database, MAX_SERIES)
        self._chunk_size = chunk_size
        self._report = report
        self._report_every_s = report_every_s

    async def run(self) -> Outcome:
        async with unavailable_when_unreachable("migration"):
            return await self._run()

    async def _run(self) -> Outcome:
        state = await self._start()
        total = await self._metrics.estimated_document_count()
        begun = last_report = time.monotonic()
        self._report(Progress(state["migrated"], max(total, state["migrated"]), 0, 0.0))
        migrated_now = 0
        chunk: list[Document] = []
        # PERF: one cursor for the whole run, cut into chunks here: a `find` per chunk (`_id > last`, limit) cost
        # the fast engine time in proportion to what was left (78 ms a chunk with 30k documents to go), so small
        # chunks made the migration quadratic.
        after = state.get("last")
        cursor = self._metrics.find({} if after is None else {"_id": {"$gt": after}}).sort("_id", ASCENDING)
        async for doc in cursor.batch_size(min(self._chunk_size, 10_000)):
            chunk.append(doc)
            if not self._chunk_complete(state, chunk):
                continue
            await self._migrate(state, chunk)
            migrated_now += len(chunk)
            chunk = []
            now = time.monotonic()
            if now - last_report >= self._report_every_s:
                self._report(Progress(state["migrated"], max(total, state["migrated"]), migrated_now, now - begun))
                last_report = now
        if chunk or state.get("pending") is not None:
            await self._migrate(state, chunk)  # the last, short chunk (or the refusal of a pending one gone short)
            migrated_now += len(chunk)
        if migrated_now or "finished_at" not in state:
            await self._state.update_one({"_id": MIGRATION_ID}, {"$set": {"finished_at": datetime.now(UTC)}})
        if migrated_now:
            self._report(Progress(state["migrated"], state["migrated"], migrated_now, time.monotonic() - begun))
        return Outcome(migrated_now, state["migrated"], already_done=migrated_now == 0)

    def _chunk_complete(self, state: Document, chunk: list[Document]) -> bool:
        """A chunk ends at `chunk_size` documents, or, redoing an interrupted one, at the document it ended at."""
        pending = state.get("pending")
        if pending is not None:
            return bool(chunk[-1]["_id"] >= pending["upto"])
        return len(chunk) >= self._chunk_size

    async def _start(self) -> Document:
        """The migration document, created with a writer id of its own on the first run."""
        await self._registry.ensure_indexes()
        # Built now, while the buckets are few, rather than by the new server at its start over every migrated
        # bucket: its listings name these indexes, and fail until they exist.
        await self._buckets.create_indexes(BUCKET_INDEXES)
        state: Document | None = await self._state.find_one({"_id": MIGRATION_ID})
        if state is None:
            writer = await self._registry.writer_id()
            fresh: Document = {"writer": writer, "migrated": 0, "started_at": datetime.now(UTC)}
            # Two first runs at once would each take a writer id; the one stored first is the one both use.
            await self._state.update_one({"_id": MIGRATION_ID}, {"$setOnInsert": fresh}, upsert=True)
            state = await self._state.find_one({"_id": MIGRATION_ID})
            assert state is not None
        await self._registry.load()
        return state

    async def _migrate(self, state: Document, docs: list[Document]) -> None:
        first = int(state["migrated"])
        pending = state.get("pending")
        if pending is not None and (not docs or pending["count"] != len(docs) or docs[-1]["_id"] != pending["upto"]):
            raise MigrationRefused(
                f"the interrupted chunk up to {pending['upto']} held {pending['count']:,} documents and now holds "
                f"{len(docs):,}: was `metrics` written to while the migration ran? Stop the old server and rerun."
            )
        if first + len(docs) > _COUNTER_LIMIT:
            raise MigrationRefused(f"more than {_COUNTER_LIMIT:,} points: one writer id cannot number them")
        upto = docs[-1]["_id"]
        if pending is None:
            pending = {"upto": upto, "count": len(docs)}
            await self._state.update_one({"_id": MIGRATION_ID}, {"$set": {"pending": pending}})
        series_ids = await self._registry.ids_for({series_key_of(doc) for doc in docs})
        chunk = build_chunk(docs, series_ids, (int(state["writer"]) << 32) + first)
        await self._insert_once(self._buckets, chunk.buckets)
        await self._insert_once(self._legacy, chunk.legacy)
        migrated = first + len(docs)
        await self._state.update_one(
            {"_id": MIGRATION_ID}, {"$set": {"last": upto, "migrated": migrated}, "$unset": {"pending": ""}}
        )
        state.update(last=upto, migrated=migrated, pending=None)

    @staticmethod
    async def _insert_once(collection: AsyncCollection[Document], docs: list[Document]) -> None:
        """Insert every document; one already there (a redone chunk) is the same document, and is left alone."""
        try:
            await collection.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            if already_there(exc) is None:
                raise

    async def drop_old(self) -> int:
        """Drop `metrics` once every document in it is migrated; the number of documents it held."""
        async with unavailable_when_unreachable("drop of the old metrics"):
            state: Document | None = await self._state.find_one({"_id": MIGRATION_ID})
            if state is None or state.get("pending") is not None or "finished_at" not in state:
                raise MigrationRefused("the migration has not finished: run `telemetry-server migrate` first")
            held = await self._metrics.count_documents({})
            later = await self._metrics.count_documents({"_id": {"$gt": state["last"]}}) if held else 0
            if held != state["migrated"] or later:
                raise MigrationRefused(
                    f"`metrics` holds {held:,} documents ({later:,} after the last one migrated) but "
                    f"{state['migrated']:,} were migrated; not dropped. Run the migration again (with the old "
                    "server stopped) and check."
                )
            await self._metrics.drop()
            await self._state.update_one({"_id": MIGRATION_ID}, {"$set": {"dropped_at": datetime.now(UTC)}})
            return held
