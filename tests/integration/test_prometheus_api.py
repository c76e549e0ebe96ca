"""The Prometheus HTTP query API against a real server: envelopes, parameters, errors, the label APIs, PromQL
answers over points written through our own API, and a cached answer that a write changes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from telemetry_server.promql.labels import prometheus_name

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
T0_S = T0.timestamp()


class Seeded:
    """Two hosts' counters and a gauge under names no other test uses, written through POST /metrics."""

    def __init__(self, client: httpx.Client) -> None:
        prefix = f"prom{uuid.uuid4().hex[:8]}"
        self.counter = f"{prefix}_requests_total"
        self.gauge = f"{prefix}.temp"  # a name Prometheus refuses: read as U__...
        self.gauge_label = prometheus_name(self.gauge)
        points: list[dict[str, Any]] = []
        for i in range(11):  # every 30 s for 5 minutes
            at = (T0 + timedelta(seconds=30 * i)).isoformat()
            points.append({"name": self.counter, "tags": ["host:a", "env:prod"], "value": 10.0 * i, "timestamp": at})
            points.append({"name": self.counter, "tags": ["host:b", "env:dev"], "value": 5.0 * i, "timestamp": at})
            points.append({"name": self.gauge, "tags": ["host:a", "indoor"], "value": 20.0 + i, "timestamp": at})
        response = client.post("/metrics", json=points)
        assert response.status_code == 201, response.text


@pytest.fixture(scope="module")
def module_client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def seeded(module_client: httpx.Client) -> Seeded:
    return Seeded(module_client)


def success(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["status"] == "success"
    return body["data"]


def error(response: httpx.Response, status: int, error_type: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == "error"
    assert body["errorType"] == error_type
    assert isinstance(body["error"], str)
    return str(body["error"])


def test_buildinfo_names_a_prometheus_release(client: httpx.Client) -> None:
    data = success(client.get("/api/v1/status/buildinfo"))
    assert data["version"].startswith("2.")


def test_exemplars_are_an_empty_list(client: httpx.Client) -> None:
    assert success(client.get("/api/v1/query_exemplars", params={"query": "up"})) == []


def test_instant_query_of_a_selector(client: httpx.Client, seeded: Seeded) -> None:
    data = success(client.get("/api/v1/query", params={"query": seeded.counter, "time": T0_S + 300}))
    assert data["resultType"] == "vector"
    by_host = {row["metric"]["host"]: row for row in data["result"]}
    assert set(by_host) == {"a", "b"}
    assert by_host["a"]["metric"] == {"__name__": seeded.counter, "host": "a", "env": "prod"}
    assert by_host["a"]["value"] == [T0_S + 300, "100"]


def test_escaped_names_and_bare_tags_select_our_series(client: httpx.Client, seeded: Seeded) -> None:
    query = f'{seeded.gauge_label}{{__tag_indoor="true"}}'
    data = success(client.get("/api/v1/query", params={"query": query, "time": T0_S + 60}))
    assert [row["metric"] for row in data["result"]] == [
        {"__name__": seeded.gauge_label, "host": "a", "__tag_indoor": "true"}
    ]
    assert data["result"][0]["value"][1] == "22"


def test_range_query_by_get_and_form_post_with_rfc3339_and_durations(client: httpx.Client, seeded: Seeded) -> None:
    query = f'sum by (env) (rate({seeded.counter}{{host=~"a|b"}}[2m]))'
    params = {"query": query, "start": (T0 + timedelta(minutes=2)).isoformat(), "end": str(T0_S + 300), "step": "1m"}
    got = success(client.get("/api/v1/query_range", params=params))
    posted = success(client.post("/api/v1/query_range", data=params))
    assert got == posted
    assert got["resultType"] == "matrix"
    by_env = {row["metric"]["env"]: row["values"] for row in got["result"]}
    assert [value for _, value in by_env["prod"]] == ["0.3333333333333333"] * 4
    assert [stamp for stamp, _ in by_env["dev"]] == [T0_S + 120, T0_S + 180, T0_S + 240, T0_S + 300]


def test_labels_label_values_and_series_answer_from_the_index(client: httpx.Client, seeded: Seeded) -> None:
    match = {"match[]": seeded.counter}
    assert success(client.get("/api/v1/labels", params=match)) == ["__name__", "env", "host"]
    assert success(client.get("/api/v1/label/host/values", params=match)) == ["a", "b"]
    assert success(client.get("/api/v1/label/host/values", params={**match, "limit": "1"})) == ["a"]
    names = success(client.get("/api/v1/label/__name__/values"))
    assert seeded.counter in names
    assert seeded.gauge_label in names
    series = success(client.post("/api/v1/series", data={"match[]": f'{seeded.counter}{{env="dev"}}'}))
    assert series == [{"__name__": seeded.counter, "env": "dev", "host": "b"}]
    either = {"match[]": [f'{seeded.counter}{{host="a"}}', seeded.gauge_label]}
    assert len(success(client.get("/api/v1/series", params=either))) == 2


def test_metadata_lists_names_as_unknown(client: httpx.Client, seeded: Seeded) -> None:
    data = success(client.get("/api/v1/metadata", params={"metric": seeded.counter}))
    assert data == {seeded.counter: [{"type": "unknown", "help": "", "unit": ""}]}


@pytest.mark.parametrize(
    ("path", "params", "status", "error_type"),
    [
        ("/api/v1/query", {}, 400, "bad_data"),
        ("/api/v1/query", {"query": "sum(("}, 400, "bad_data"),
        ("/api/v1/query", {"query": "up", "time": "yesterday"}, 400, "bad_data"),
        ("/api/v1/query", {"query": "up", "timeout": "soon"}, 400, "bad_data"),
        ("/api/v1/query", {"query": "up[5m:1m]"}, 400, "bad_data"),  # a subquery: outside the subset
        ("/api/v1/query", {"query": '{job=~"("}'}, 400, "bad_data"),
        ("/api/v1/query_range", {"query": "up", "start": "10", "end": "5", "step": "1"}, 400, "bad_data"),
        ("/api/v1/query_range", {"query": "up", "start": "0", "end": "100000", "step": "1"}, 400, "bad_data"),
        ("/api/v1/query_range", {"query": "up", "start": "0", "end": "10"}, 400, "bad_data"),
        ("/api/v1/series", {}, 400, "bad_data"),
        ("/api/v1/series", {"match[]": "rate(up[5m])"}, 400, "bad_data"),
        ("/api/v1/labels", {"match[]": '{job=""}'}, 400, "bad_data"),
        ("/api/v1/metadata", {"limit": "many"}, 400, "bad_data"),
        ("/api/v1/labels", {"limit": "-1"}, 400, "bad_data"),
    ],
)
def test_bad_parameters_are_bad_data_in_prometheus_envelope(
    client: httpx.Client, path: str, params: dict[str, str], status: int, error_type: str
) -> None:
    error(client.get(path, params=params), status, error_type)


def test_a_query_past_the_series_limit_is_an_execution_error(server_factory: Any, seeded: Seeded) -> None:
    server = server_factory(workers=1, PROMQL_MAX_SERIES="1")
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        message = error(http.get("/api/v1/query", params={"query": seeded.counter, "time": T0_S}), 422, "execution")
    assert "PROMQL_MAX_SERIES" in message


def test_remote_write_still_answers_on_its_path(client: httpx.Client) -> None:
    response = client.post("/api/v1/write", content=b"", headers={"content-type": "application/x-protobuf"})
    assert response.status_code in (204, 400)
    assert response.headers["content-type"].startswith("application/problem+json") or response.status_code == 204


def test_a_cached_answer_changes_with_a_write_to_its_series(client: httpx.Client) -> None:
    name = f"prom{uuid.uuid4().hex[:8]}_cached"
    point = {"name": name, "tags": ["host:c"], "value": 1.0, "timestamp": T0.isoformat()}
    assert client.post("/metrics", json=point).status_code == 201
    params = {"query": f"sum({name})", "time": T0_S + 10}
    first = success(client.get("/api/v1/query", params=params))
    assert success(client.get("/api/v1/query", params=params)) == first  # cached now, or computed again: equal
    assert first["result"][0]["value"][1] == "1"
    later = {**point, "value": 2.0, "tags": ["host:d"], "timestamp": (T0 + timedelta(seconds=5)).isoformat()}
    assert client.post("/metrics", json=later).status_code == 201
    assert success(client.get("/api/v1/query", params=params))["result"][0]["value"][1] == "3"
