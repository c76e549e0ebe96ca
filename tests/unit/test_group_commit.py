"""GroupCommitter: concurrent writes share a commit; a failed commit fails every write in it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from telemetry_server.errors import StorageUnavailable
from telemetry_server.services.group_commit import GroupCommitter


class Recorder:
    def __init__(self, fail: BaseException | None = None, delay: float = 0.0) -> None:
        self.batches: list[list[int]] = []
        self.fail = fail
        self.delay = delay

    async def commit(self, items: Sequence[int]) -> list[str]:
        self.batches.append(list(items))
        await asyncio.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        return [f"id-{i}" for i in items]


def committer(recorder: Recorder, **options: float) -> GroupCommitter[int, str]:
    defaults: dict[str, float] = {"max_batch": 100, "max_delay_seconds": 0.0, "max_in_flight": 1}
    defaults.update(options)
    return GroupCommitter(
        recorder.commit,
        max_batch=int(defaults["max_batch"]),
        max_delay_seconds=defaults["max_delay_seconds"],
        max_in_flight=int(defaults["max_in_flight"]),
    )


def test_concurrent_writes_share_one_commit_and_each_gets_its_result() -> None:
    recorder = Recorder()

    async def scenario() -> list[str]:
        group = committer(recorder)
        return await asyncio.gather(*(group.submit(i) for i in range(10)))

    assert asyncio.run(scenario()) == [f"id-{i}" for i in range(10)]
    assert recorder.batches == [list(range(10))]


def test_writes_arriving_during_a_commit_form_the_next_batch() -> None:
    recorder = Recorder(delay=0.01)

    async def scenario() -> None:
        group = committer(recorder, max_in_flight=1)
        first = asyncio.gather(*(group.submit(i) for i in range(3)))
        await asyncio.sleep(0.001)  # the first batch is in flight now
        second = asyncio.gather(*(group.submit(i) for i in range(3, 8)))
        await first
        await second

    asyncio.run(scenario())
    assert recorder.batches == [[0, 1, 2], [3, 4, 5, 6, 7]]


def test_a_full_batch_leaves_at_once_and_batches_never_exceed_the_maximum() -> None:
    recorder = Recorder()

    async def scenario() -> None:
        group = committer(recorder, max_batch=4, max_delay_seconds=60, max_in_flight=8)
        await asyncio.wait_for(asyncio.gather(*(group.submit(i) for i in range(8))), timeout=5)

    asyncio.run(scenario())
    assert recorder.batches == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_a_failed_commit_fails_every_write_in_it() -> None:
    recorder = Recorder(fail=StorageUnavailable("MongoDB is unreachable (test)"))

    async def scenario() -> list[BaseException | str]:
        group = committer(recorder)
        return await asyncio.gather(*(group.submit(i) for i in range(5)), return_exceptions=True)

    results = asyncio.run(scenario())
    assert all(isinstance(r, StorageUnavailable) for r in results)
    assert recorder.batches == [[0, 1, 2, 3, 4]]


def test_drain_commits_what_is_still_gathering() -> None:
    recorder = Recorder()

    async def scenario() -> list[str]:
        group = committer(recorder, max_delay_seconds=60)  # would wait a minute
        writes = [asyncio.ensure_future(group.submit(i)) for i in range(3)]
        await asyncio.sleep(0)
        await asyncio.wait_for(group.drain(), timeout=5)
        return [w.result() for w in writes]

    assert asyncio.run(scenario()) == ["id-0", "id-1", "id-2"]


def test_an_unexpected_error_reaches_the_writers_too() -> None:
    recorder = Recorder(fail=RuntimeError("bug"))

    async def scenario() -> None:
        await committer(recorder).submit(1)

    with pytest.raises(RuntimeError, match="bug"):
        asyncio.run(scenario())
