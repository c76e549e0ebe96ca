"""The mixed workload for locust: 70% filtered GET /metrics, 20% POST, 5% prompts, 5% PUT/DELETE.

Readers are concentrated (Zipf over the 200 series names, as dashboards are); writers spread evenly over
every name, and each write invalidates that name's cached listings. Without GET /query (BENCH_PROMPT_PATHS
unset) its 5% is left out and the rest keep their proportions. Cache hits and misses are counted from the
`x-cache` header and written to BENCH_LOCUST_OUT when the run stops.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from locust import constant, constant_throughput, events, task
from locust.contrib.fasthttp import FastHttpUser

from bench.workload import HOSTS, NAMES, PAGE, RECORD_SEPARATOR, REGIONS

_ZIPF = [1 / (rank**1.2) for rank in range(1, len(NAMES) + 1)]
_PROMPTS = (
    [p for p in Path(os.environ["BENCH_PROMPT_PATHS"]).read_text().split(RECORD_SEPARATOR) if p.strip()]
    if os.environ.get("BENCH_PROMPT_PATHS")
    else []
)
_USER_RATE = float(os.environ.get("BENCH_USER_RATE") or 0)
CACHE = Counter[str]()


def _metric(rng: random.Random) -> dict[str, Any]:
    tags = [f"host:{rng.choice(HOSTS)}", f"region:{rng.choice(REGIONS)}"]
    return {"name": rng.choice(NAMES), "tags": tags, "value": round(rng.random() * 100, 3)}


class TelemetryUser(FastHttpUser):
    # With BENCH_USER_RATE each user paces itself to that many requests a second, so latency is measured at
    # a set rate; without it, no think time: each user sends its next request when the last is answered (a
    # closed loop, which measures the saturated server instead).
    wait_time = constant_throughput(_USER_RATE) if _USER_RATE else constant(0)

    def on_start(self) -> None:
        self.rng = random.Random()
        self.owned: list[str] = []

    def _count_cache(self, response: Any, kind: str) -> None:
        header = response.headers.get("x-cache") if response.headers else None
        CACHE[f"{kind}:{header or 'none'}"] += 1

    @task(140)
    def filtered_get(self) -> None:
        name = self.rng.choices(NAMES, weights=_ZIPF)[0]
        query = urlencode({"name": name, "tag": f"region:{self.rng.choice(REGIONS[:2])}", "limit": PAGE})
        with self.client.get(f"/metrics?{query}", name="/metrics", catch_response=True) as response:
            self._count_cache(response, "metrics")

    @task(40)
    def post_metric(self) -> None:
        with self.client.post("/metrics", json=_metric(self.rng), name="/metrics", catch_response=True) as response:
            if response.status_code == 201:
                self.owned.append(json.loads(response.content)["id"])
                self.owned = self.owned[-200:]

    @task(10 if _PROMPTS else 0)
    def prompt(self) -> None:
        with self.client.get(self.rng.choice(_PROMPTS), name="/query", catch_response=True) as response:
            self._count_cache(response, "query")

    @task(5)
    def put_metric(self) -> None:
        if not self.owned:
            return self.post_metric()
        id_ = self.rng.choice(self.owned)
        self.client.put(f"/metrics/{id_}", json=_metric(self.rng), name="/metrics/{id}")
        return None

    @task(5)
    def delete_metric(self) -> None:
        if not self.owned:
            return self.post_metric()
        id_ = self.owned.pop(self.rng.randrange(len(self.owned)))
        self.client.delete(f"/metrics/{id_}", name="/metrics/{id}")
        return None


@events.test_stop.add_listener  # type: ignore[untyped-decorator]
def _write_cache_counts(**_: Any) -> None:
    out = os.environ.get("BENCH_LOCUST_OUT")
    if out:
        Path(out).write_text(json.dumps(dict(CACHE)))
