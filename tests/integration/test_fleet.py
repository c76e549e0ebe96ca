"""Three instances of 2 workers behind HAProxy, sharing one MongoDB-wire engine and one Redis: what must hold
across instances (fresh reads, one rate limit, revocations, /stats) and a rolling restart under load."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from telemetry_server import engines
from telemetry_server.auth.keys import generate_key
from tests.balancer import SERVER_HEADER, Balancer, haproxy_binary, server_name
from tests.integration.conftest import ServerProcess, count_stored, wait_until

INSTANCES = 3
BOOTSTRAP = generate_key()[0]
RATE, BURST = 10, 100  # per key; each writer of the rolling restart stays under the rate
DRAIN_SECONDS = 3  # more than the balancer's 2 probes 0.25 s apart, each of which may take a while under load
APP_ENV = f"fleet_{uuid.uuid4().hex[:8]}"  # a database and Redis namespace of its own


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


@dataclass
class Fleet:
    env: dict[str, str]
    instances: list[ServerProcess]
    balancer: Balancer
    folder: Path
    restarts: int = field(default=0)

    def create_key(self, role: str) -> tuple[str, str]:
        created = httpx.post(
            f"{self.balancer.url}/admin/keys", json={"role": role, "name": "fleet"}, headers=bearer(BOOTSTRAP)
        )
        assert created.status_code == 201, created.text
        return created.json()["id"], created.json()["key"]

    def start_instance(self, index: int, port: int | None = None) -> ServerProcess:
        log = self.folder / f"instance-{index}-{self.restarts}.log"
        return ServerProcess(self.env, 2, log, port=port)


@pytest.fixture(scope="module")
def fleet(work_dir: Path, mongo_uri: str, redis_factory: Callable[[], engines.Engine]) -> Iterator[Fleet]:
    binary = haproxy_binary()
    if binary is None:
        pytest.skip("HAProxy is not installed (scripts/fleet.sh haproxy installs it with apt-get)")
    env = {
        **os.environ,
        "ENVIRONMENT": "test",
        "APP_ENV": APP_ENV,
        "LOG_LEVEL": "warning",
        "MONGO_URI": mongo_uri,
        "REDIS_URI": redis_factory().uri,
        "AUTH_ENABLED": "true",
        "BOOTSTRAP_ADMIN_KEY": BOOTSTRAP,
        "RATE_LIMIT_PER_SECOND": str(RATE),
        "RATE_LIMIT_BURST": str(BURST),
        "SHUTDOWN_DRAIN_SECONDS": str(DRAIN_SECONDS),
    }
    folder = work_dir / "fleet"
    folder.mkdir()
    fleet = Fleet(env, [], None, folder)  # type: ignore[arg-type]
    with ThreadPoolExecutor(INSTANCES) as pool:
        fleet.instances = list(pool.map(fleet.start_instance, range(INSTANCES)))
    try:
        fleet.balancer = Balancer(binary, [s.port for s in fleet.instances], folder / "haproxy")
        yield fleet
    finally:
        if fleet.balancer is not None:
            fleet.balancer.stop()
        for instance in fleet.instances:
            instance.stop()


def listed(client: httpx.Client, name: str) -> list[str]:
    response = client.get("/metrics", params={"name": name, "limit": 50})
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def test_the_balancer_spreads_requests_over_every_instance(fleet: Fleet) -> None:
    with httpx.Client(base_url=fleet.balancer.url) as client:
        served = {client.get("/readyz").headers[SERVER_HEADER] for _ in range(3 * INSTANCES)}

    assert served == {server_name(i) for i in range(INSTANCES)}


def test_a_write_through_one_instance_is_never_served_stale_by_another(fleet: Fleet) -> None:
    """A reader's worker may lag by the invalidation message's trip (README, Caching): once that worker has
    seen a later message, a marker it wrote itself after the write, it must answer the write; no sleep."""
    name = f"fleet.{uuid.uuid4().hex[:8]}"
    writer_instance, *reader_instances = fleet.instances
    stale_at_once = 0
    with contextlib.ExitStack() as stack:
        # A key per client, so that none meets the rate limit.
        writer, *readers = (
            stack.enter_context(
                httpx.Client(base_url=instance.base_url, timeout=30, headers=bearer(fleet.create_key("write")[1]))
            )
            for instance in [writer_instance, *reader_instances * 4]
        )
        for round_ in range(10):
            for reader in readers:  # each reader's worker holds the page before the write
                listed(reader, name)
            created = writer.post("/metrics", json={"name": name, "value": round_})
            assert created.status_code == 201, created.text
            point = created.json()["id"]
            for reader in readers:
                if point in listed(reader, name):
                    continue
                stale_at_once += 1
                marker = reader.post("/metrics", json={"name": f"{name}.marker", "value": 0})
                assert marker.status_code == 201, marker.text
                assert point in listed(reader, name), f"round {round_}: stale after a later message"
    print(f"reads that lagged the write by the message's trip: {stale_at_once} of {10 * len(readers)}")


def test_the_rate_limit_is_global(fleet: Fleet) -> None:
    _, key = fleet.create_key("read")

    def hammer(_: int) -> list[tuple[int, str]]:
        with httpx.Client(base_url=fleet.balancer.url, timeout=30, headers=bearer(key)) as client:
            answers = [client.get("/metrics", params={"limit": 1}) for _ in range(60)]
        return [(a.status_code, a.headers.get(SERVER_HEADER, "")) for a in answers]

    began = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        answers = [answer for batch in pool.map(hammer, range(8)) for answer in batch]
    elapsed = time.monotonic() - began

    admitted = sum(1 for status, _ in answers if status == 200)
    assert {status for status, _ in answers} <= {200, 429}
    assert {server for _, server in answers} == {server_name(i) for i in range(INSTANCES)}
    # Limits kept per instance would have admitted about 3 bursts.
    assert admitted <= BURST + RATE * elapsed + 1, f"{admitted} admitted in {elapsed:.1f} s"
    # What a worker leased and did not spend lapses after a second (leases of 1-2 tokens at this rate, 2
    # workers an instance); nothing more may go missing.
    lapsed_at_most = INSTANCES * 2 * 2
    assert admitted >= BURST - lapsed_at_most, f"only {admitted} admitted: the shared bucket lost tokens"


def test_a_revoked_key_is_refused_by_every_instance_within_a_second(fleet: Fleet) -> None:
    key_id, key = fleet.create_key("read")
    # Fresh connections to every instance, so each worker has the key cached before it is revoked.
    for instance in fleet.instances:
        for _ in range(12):
            answer = httpx.get(f"{instance.base_url}/metrics", params={"limit": 1}, headers=bearer(key))
            assert answer.status_code == 200, answer.text

    revoked = httpx.delete(f"{fleet.instances[0].base_url}/admin/keys/{key_id}", headers=bearer(BOOTSTRAP))
    assert revoked.status_code == 200, revoked.text
    time.sleep(1.0)

    for instance in fleet.instances:
        statuses = {httpx.get(f"{instance.base_url}/metrics", headers=bearer(key)).status_code for _ in range(12)}
        assert statuses == {401}, f"{instance.base_url}: {statuses}"


def test_stats_add_up_every_instance(fleet: Fleet) -> None:
    per_instance = 25  # of /healthz, which no other test here asks for
    for instance in fleet.instances:
        for _ in range(per_instance):
            assert httpx.get(f"{instance.base_url}/healthz").status_code == 200

    def healthz_count() -> int:
        stats = httpx.get(f"{fleet.balancer.url}/stats", headers=bearer(BOOTSTRAP)).json()
        return sum(r["count"] for r in stats["requests"] if r["route"] == "healthz" and r["status"] == 200)

    # Each worker posts its figures every second; the sum then holds what every instance served, exactly.
    assert wait_until(lambda: healthz_count() == INSTANCES * per_instance, 10), healthz_count()
    stats = httpx.get(f"{fleet.instances[1].base_url}/stats", headers=bearer(BOOTSTRAP)).json()
    assert stats["scope"] == "all workers"
    assert len(stats["workers"]) == INSTANCES * 2


class Writers:
    """Threads posting single points through the balancer, each with its own key and under its rate."""

    def __init__(self, fleet: Fleet, count: int) -> None:
        self._url = fleet.balancer.url
        self._keys = [fleet.create_key("write")[1] for _ in range(count)]
        self._stop = threading.Event()
        self.acknowledged: list[str] = []
        self.failures: list[str] = []
        self._threads = [threading.Thread(target=self._write, args=(key,)) for key in self._keys]

    def __enter__(self) -> Writers:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _write(self, key: str) -> None:
        name = f"fleet.rolling.{uuid.uuid4().hex[:8]}"
        with httpx.Client(base_url=self._url, timeout=30, headers=bearer(key)) as client:
            while not self._stop.is_set():
                try:
                    response = client.post("/metrics", json={"name": name, "value": 1})
                except httpx.HTTPError as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                if response.status_code == 201:
                    self.acknowledged.append(response.json()["id"])
                else:
                    self.failures.append(f"{response.status_code} from {response.headers.get(SERVER_HEADER)}")
                time.sleep(1 / (RATE - 2))


def test_a_rolling_restart_under_load_drops_nothing(fleet: Fleet, mongo_uri: str) -> None:
    """Each instance in turn gets SIGTERM: /readyz goes 503 while it still serves, HAProxy takes it out, it
    stops; a new one starts on its port and HAProxy takes it back, before the next is restarted."""
    taken_out_while_serving = []
    with Writers(fleet, 6) as writers:
        time.sleep(1)
        fleet.restarts += 1
        for index, old in enumerate(list(fleet.instances)):
            old.process.send_signal(signal.SIGTERM)
            # The balancer's own probe is the witness: /readyz answered 503 (not a refused connection) and took
            # the instance out while its process still ran.
            assert fleet.balancer.wait_for_states({server_name(index): "DOWN"}, DRAIN_SECONDS * 2)
            alive = old.process.poll() is None
            taken_out_while_serving.append((alive, fleet.balancer.last_checks()[server_name(index)]))
            assert old.process.wait(timeout=60) == 0
            fleet.instances[index] = fleet.start_instance(index, port=old.port)
            assert fleet.balancer.wait_for_states({server_name(index): "UP"}, 30)
        time.sleep(1)

    print(f"rolling restart: {len(writers.acknowledged)} writes acknowledged, {len(writers.failures)} failed")
    assert taken_out_while_serving == [(True, "L7STS 503")] * INSTANCES, "not taken out by a draining /readyz"
    assert not writers.failures, writers.failures[:10]
    assert len(writers.acknowledged) > 100, "too little load to show anything"
    stored = count_stored(mongo_uri, f"telemetry_server_{APP_ENV}", writers.acknowledged)
    assert stored == len(writers.acknowledged)
