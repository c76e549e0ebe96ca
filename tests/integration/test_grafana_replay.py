"""Grafana's Prometheus data source, replayed: the requests it makes to test a connection, load a dashboard and
explore metrics and labels, in its own parameter spellings and methods, each answer checked as Grafana reads it.

The list is read from Grafana's source (pkg/promlib: healthcheck.go, heuristics.go, client/client.go;
packages/grafana-prometheus/src: datasource.ts, language_provider.ts, resource_clients.ts, constants.ts):
- "Save & test": `POST /api/v1/query` (form) `query=1+1&time=4`, then `GET /api/v1/status/buildinfo` (no
  `features` in it: Prometheus, not Mimir);
- on load: `POST /api/v1/query_exemplars` with `start`/`end` in milliseconds (only `status` is read),
  `GET /api/v1/label/__name__/values?start=&end=` (whole seconds), `GET /api/v1/metadata`,
  `POST /api/v1/labels` (form: `start`, `end`, `match[]`);
- exploring: `GET /api/v1/label/<name>/values?start=&end=&match[]=&limit=40000`, `POST /api/v1/series` (form:
  `start`, `end`, `match[]={__name__!=""}`, `limit=40000`);
- panels: `POST /api/v1/query_range` (form: `query`, `start`, `end` and `step` as seconds with decimals, and
  `timeout` when the data source sets one) and `POST /api/v1/query` (`query`, `time`).
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

T0 = datetime(2026, 3, 4, 9, 0, tzinfo=UTC)
FORM = {"content-type": "application/x-www-form-urlencoded"}
SERIES_LIMIT = "40000"  # Grafana's DEFAULT_SERIES_LIMIT


@pytest.fixture(scope="module")
def metric(base_url: str) -> str:
    name = f"grafana{uuid.uuid4().hex[:8]}_http_requests_total"
    body = [
        {
            "name": name,
            "tags": [f"job:{job}", f"instance:{job}-1"],
            "value": float(i * (3 if job == "api" else 1)),
            "timestamp": (T0 + timedelta(seconds=15 * i)).isoformat(),
        }
        for i in range(40)
        for job in ("api", "web")
    ]
    assert httpx.post(f"{base_url}/metrics", json=body, timeout=30).status_code == 201
    return name


def grafana_reads(response: httpx.Response) -> Any:
    """What Grafana's client does with an answer: JSON, `status` success, and `data`."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "success"
    assert "data" in body
    return body["data"]


def check_sample(pair: Any) -> None:
    """A sample as Grafana's converter reads it: [unix seconds as a number, the value as a string]."""
    stamp, value = pair
    assert isinstance(stamp, int | float)
    assert isinstance(value, str)
    float(value)  # "NaN", "+Inf" and decimals all parse


def test_save_and_test(client: httpx.Client) -> None:
    data = grafana_reads(client.post("/api/v1/query", data={"query": "1+1", "time": "4"}, headers=FORM))
    assert data == {"resultType": "scalar", "result": [4, "2"]}
    build = grafana_reads(client.get("/api/v1/status/buildinfo"))
    assert not build.get("features")  # no features: Grafana reads the server as Prometheus
    major, minor, *_ = (int(part) for part in build["version"].split("."))
    assert (major, minor) >= (2, 24)  # the label APIs with match[] (hasLabelsMatchAPISupport)


def test_loading_the_data_source(client: httpx.Client, metric: str) -> None:
    now_ms = int(T0.timestamp() * 1000)
    exemplars = {"query": "test", "start": str(now_ms - 1_800_000), "end": str(now_ms)}
    assert grafana_reads(client.post("/api/v1/query_exemplars", data=exemplars, headers=FORM)) == []
    window = {"start": str(int(T0.timestamp()) - 3600), "end": str(int(T0.timestamp()) + 3600)}
    names = grafana_reads(client.get("/api/v1/label/__name__/values", params=window))
    assert all(isinstance(name, str) for name in names)
    assert metric in names
    metadata = grafana_reads(client.get("/api/v1/metadata"))
    assert metadata[metric] == [{"type": "unknown", "help": "", "unit": ""}]
    labels = grafana_reads(client.post("/api/v1/labels", data={**window, "match[]": metric}, headers=FORM))
    assert labels == ["__name__", "instance", "job"]


def test_exploring_labels_and_series(client: httpx.Client, metric: str) -> None:
    window = {"start": str(int(T0.timestamp())), "end": str(int(T0.timestamp()) + 600)}
    values = client.get(
        "/api/v1/label/job/values", params={**window, "match[]": f'{{__name__="{metric}"}}', "limit": SERIES_LIMIT}
    )
    assert grafana_reads(values) == ["api", "web"]
    form = {**window, "match[]": f'{{__name__="{metric}",job!=""}}', "limit": SERIES_LIMIT}
    series = grafana_reads(client.post("/api/v1/series", data=form, headers=FORM))
    assert {entry["job"] for entry in series} == {"api", "web"}
    for entry in series:
        assert all(isinstance(key, str) and isinstance(value, str) for key, value in entry.items())
    everything = {**window, "match[]": '{__name__!=""}', "limit": SERIES_LIMIT}
    assert len(grafana_reads(client.post("/api/v1/series", data=everything, headers=FORM))) >= 2


def test_a_dashboard_panel_and_an_explore_instant_query(client: httpx.Client, metric: str) -> None:
    start, end = T0.timestamp() + 120, T0.timestamp() + 585
    form = {
        "query": f"sum by (job) (rate({metric}[1m]))",
        "start": f"{start:.3f}",
        "end": f"{end:.3f}",
        "step": "15",
        "timeout": "60s",
    }
    data = grafana_reads(client.post("/api/v1/query_range", data=form, headers=FORM))
    assert data["resultType"] == "matrix"
    by_job = {row["metric"]["job"]: row["values"] for row in data["result"]}
    assert set(by_job) == {"api", "web"}
    for values in by_job.values():
        for pair in values:
            check_sample(pair)
    assert math.isclose(float(by_job["api"][0][1]), 0.2)
    instant = {"query": f'{metric}{{job="web"}}', "time": f"{T0.timestamp() + 300.5:.1f}"}
    data = grafana_reads(client.post("/api/v1/query", data=instant, headers=FORM))
    assert data["resultType"] == "vector"
    assert len(data["result"]) == 1
    check_sample(data["result"][0]["value"])
    assert data["result"][0]["value"][1] == "20"


def test_a_query_grafana_shows_as_an_error(client: httpx.Client) -> None:
    form = {"query": "sum(", "start": "0", "end": "60", "step": "15"}
    response = client.post("/api/v1/query_range", data=form, headers=FORM)
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == "error"
    assert body["errorType"] == "bad_data"
    assert body["error"]
