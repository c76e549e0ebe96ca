"""Group commit, the two-level cache and the rate limiter on a real 2-worker server."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import threading
import time
from collections.abc import Callable

import httpx

from tests.integration.conftest import ServerProcess, count_stored


def test_a_write_invalidates_the_l1_of_every_worker(client: httpx.Client, base_url: str, metric_name: str) -> None:
    created = client.post("/metrics", json={"name": metric_name, "value": 1}).json()
    # Many keep-alive-less requests spread over both workers, so each worker's L1 holds the listing.
    for _ in range(20):
        assert httpx.get(f"{base_url}/metrics", params={"name": metric_name}).status_code == 200
    client.put(f"/metrics/{created['id']}", json={"name": metric_name, "value": 2})
    seen = {
        httpx.get(f"{base_url}/metrics", params={"name": metric_name}).json()["items"][0]["value"] for _ in range(20)
    }
    assert seen == {2.0}


def test_the_limit_holds_across_workers_and_429_says_when_to_retry(
    server_factory: Callable[..., ServerProcess],
) -> None:
    # A low rate, so that even on a loaded machine (a request taking 200 ms) 40 requests go over it.
    server = server_factory(RATE_LIMIT_PER_SECOND="1", RATE_LIMIT_BURST="5")
    statuses: list[int] = []
    started = time.monotonic()
    refused: httpx.Response | None = None
    for _ in range(40):
        response = httpx.get(f"{server.base_url}/metrics", params={"limit": 1})  # a new connection each time
        statuses.append(response.status_code)
        if response.status_code == 429:
            refused = response
    elapsed = time.monotonic() - started
    assert set(statuses) <= {200, 429}
    assert statuses.count(200) <= 5 + 1 * elapsed + 1
    assert refused is not None
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["ratelimit-limit"] == "1"
    assert refused.headers["content-type"] == "application/problem+json"
    assert httpx.get(f"{server.base_url}/healthz").status_code == 200  # probes are never limited


def test_no_acknowledged_write_is_lost_on_graceful_shutdown(
    server_factory: Callable[..., ServerProcess], mongo_uri: str, metric_name: str
) -> None:
    server = server_factory(WRITE_BATCH_DELAY_MS="20")  # writes wait in batches when the signal comes
    url = f"{server.base_url}/metrics"
    first_acknowledged = threading.Event()

    def write(i: int) -> str | None:
        try:
            response = httpx.post(url, json={"name": metric_name, "value": i}, timeout=30)
        except httpx.HTTPError:
            return None  # never acknowledged
        if response.status_code != 201:
            return None
        first_acknowledged.set()
        return str(response.json()["id"])

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        futures = [pool.submit(write, i) for i in range(400)]
        # The signal comes while writes flow: after the first is acknowledged (a fixed delay was sometimes
        # too short on a loaded machine, and the signal came before any write).
        first_acknowledged.wait(timeout=30)
        os.kill(server.process.pid, signal.SIGTERM)
        acknowledged = [id_ for f in futures if (id_ := f.result()) is not None]
    server.process.wait(timeout=60)

    assert acknowledged, "no write was acknowledged before the shutdown"
    assert count_stored(mongo_uri, "telemetry_server_test", acknowledged) == len(acknowledged)
