"""The exact hot cache on a real 2-worker server: writes, updates and deletes on several connections, and every
listing read compared with what the database answers (a second server, with its caches off, on the same data).

A connection stays on one worker. A read on the worker that took every write of the round must be exact at once
(a write is acknowledged only once its worker's L1 has it). A read on another worker may lag by the documented
window, the invalidation message's trip: if it differs, it must be exact once that worker has received a later
message (a marker write made after the round, seen in that worker's L1), with no sleep.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.integration.conftest import ServerProcess, wait_until

ROUNDS = 30
CONNECTIONS = 8
Params = dict[str, Any]


class Connection:
    """One keep-alive connection, so one worker (told by the pid in a problem's request id)."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=30)
        self.worker = self.http.get("/no-such-route").json()["request_id"].split("-")[0]

    def get(self, params: Params) -> httpx.Response:
        response = self.http.get("/metrics", params=params)
        assert response.status_code == 200, response.text
        return response


def listed(response: httpx.Response) -> list[str]:
    return [m["id"] for m in response.json()["items"]]


@pytest.fixture
def connections(server_factory: Callable[..., ServerProcess]) -> Iterator[list[Connection]]:
    server = server_factory(workers=2)
    opened = [Connection(server.base_url) for _ in range(CONNECTIONS)]
    for _ in range(40):  # the kernel spreads connections over the workers; make sure both have some
        if len({c.worker for c in opened}) == 2:
            break
        opened.append(Connection(server.base_url))
    yield opened
    for connection in opened:
        connection.http.close()


class Workload:
    """Random writes over two names, tags and times, on points any connection may PUT or DELETE (so two may race)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        run = uuid.uuid4().hex[:10]
        self.names = [f"test.consistency.{run}.a", f"test.consistency.{run}.b"]
        self.run_tag = f"run:{run}"
        self.marker = f"test.consistency.{run}.marker"
        self.base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
        self.clock = 0
        self.ids: list[str] = []

    def stamp(self, ms: int) -> str:
        return (self.base + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def point(self, rng: random.Random) -> dict[str, Any]:
        self.clock += 10
        ms = self.clock if rng.random() < 0.8 else rng.randrange(0, self.clock + 1)  # mostly newest, some older
        tags = [self.run_tag, rng.choice(["region:eu", "region:us"]), rng.choice(["host:a", "host:b"])]
        return {"name": rng.choice(self.names), "tags": tags, "value": rng.randrange(100), "timestamp": self.stamp(ms)}

    def target(self, rng: random.Random) -> str:
        """Mostly a recent point, as those are the ones on cached pages."""
        return rng.choice(self.ids[-12:] if rng.random() < 0.8 else self.ids)

    def queries(self) -> list[Params]:
        first, second = self.names
        return [
            {"name": first, "limit": 3},
            {"name": first, "tag": "region:eu", "limit": 3},
            {"name": first, "tag": ["region:eu", "host:a"], "limit": 2},
            {"tag": self.run_tag, "limit": 4},
            {"name": second, "value_gt": 50, "limit": 3},
            {"name": first, "from": self.stamp(2_000), "to": self.stamp(4_000), "limit": 3},
            {"name": second, "limit": 20},
            {"name": second, "limit": 2, "sort": "asc"},  # not a newest page: dropped by writes, not updated
        ]

    def write(self, connection: Connection, rng: random.Random) -> None:
        kind = rng.choices(["post", "batch", "put", "delete", "large"], weights=[45, 10, 25, 17, 3])[0]
        if kind in ("put", "delete") and not self.ids:
            kind = "post"
        http = connection.http
        if kind == "post":
            response = http.post("/metrics", json=self.point(rng))
            assert response.status_code == 201, response.text
            self.ids.append(response.json()["id"])
        elif kind in ("batch", "large"):  # a large batch sends no points: it drops what it touches
            response = http.post("/metrics", json=[self.point(rng) for _ in range(3 if kind == "batch" else 70)])
            assert response.status_code == 201, response.text
            self.ids += response.json()["ids"]
        elif kind == "put":
            response = http.put(f"/metrics/{self.target(rng)}", json=self.point(rng))
            assert response.status_code in (200, 404), response.text  # 404: deleted by another connection
        else:
            response = http.delete(f"/metrics/{self.target(rng)}")
            assert response.status_code in (204, 404), response.text


class Reads:
    """Reads of one round on every connection, each compared with the database's answer."""

    def __init__(self, round_: int, writing: str | None, marker_id: str, marker_params: Params) -> None:
        self.round = round_
        self.writing = writing  # the one worker that took this round's writes (None: both did)
        self.marker_id = marker_id
        self.marker_params = marker_params
        self.outcomes: Counter[str] = Counter()
        self.wrong: list[str] = []
        self._lock = threading.Lock()

    def check(self, connection: Connection, queries: list[Params], answers: list[Any]) -> None:
        for params, answer in zip(queries, answers, strict=True):
            response = connection.get(params)
            self._count(response.headers["x-cache"])
            if response.json() == answer:
                continue
            if connection.worker == self.writing:
                self.wrong.append(f"round {self.round}, writer's worker, {params}: {response.text} != {answer}")
                continue
            self._count("differed within the window")
            assert wait_until(lambda: self.marker_id in listed(connection.get(self.marker_params))), "no marker"
            again = connection.get(params).json()
            if again != answer:
                self.wrong.append(f"round {self.round}, other worker, {params}: {again} != {answer}")

    def _count(self, outcome: str) -> None:
        with self._lock:
            self.outcomes[outcome] += 1


def test_every_listing_read_equals_the_database_answer(
    connections: list[Connection], server_factory: Callable[..., ServerProcess]
) -> None:
    reference = server_factory(workers=1, CACHE_TTL_SECONDS="0", L1_CACHE_TTL_MS="0")  # reads the database
    workload = Workload(seed=9)
    queries = workload.queries()
    workers = sorted({c.worker for c in connections})
    marker_params = {"name": workload.marker, "limit": 1}
    outcomes: Counter[str] = Counter()
    wrong: list[str] = []

    database = httpx.Client(base_url=reference.base_url, timeout=30)
    with database, ThreadPoolExecutor(len(connections)) as pool:
        for round_ in range(ROUNDS):
            for connection in connections:  # each worker's L1 holds the marker's page before the marker is written
                connection.get(marker_params)
            # Rounds alternate: writes on one worker only (its readers must be exact at once), then on both.
            writing = workers[round_ % len(workers)] if round_ % 2 == 0 else None
            writers = [c for c in connections if writing in (None, c.worker)]
            seeds = [workload.rng.randrange(1 << 30) for _ in writers]
            list(pool.map(lambda c, s: [workload.write(c, random.Random(s)) for _ in range(2)], writers, seeds))
            marker_id = connections[0].http.post("/metrics", json={"name": workload.marker, "value": 1}).json()["id"]
            answers = []
            for params in queries:
                response = database.get("/metrics", params=params)
                assert response.headers["x-cache"] == "miss"
                answers.append(response.json())
            reads = Reads(round_, writing, marker_id, marker_params)
            list(pool.map(reads.check, connections, [queries] * len(connections), [answers] * len(connections)))
            outcomes.update(reads.outcomes)
            wrong += reads.wrong

    print(f"listing reads: {dict(outcomes)}")
    assert not wrong, "\n".join(wrong[:5])
    assert outcomes["hit"] > outcomes["miss"], "the cache was barely used: this test showed nothing"
