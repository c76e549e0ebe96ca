"""GET /series/names and /series/tags over real HTTP, on a 2-worker server."""

from __future__ import annotations

import httpx


def test_names_and_tags_of_the_series_written(client: httpx.Client, metric_name: str) -> None:
    points = [
        {"name": f"{metric_name}.cpu", "tags": ["host:a", "env:prod"], "value": 1},
        {"name": f"{metric_name}.cpu", "tags": ["host:b", "env:prod"], "value": 2},
        {"name": f"{metric_name}.mem", "tags": ["host:a"], "value": 3},
    ]
    assert client.post("/metrics", json=points).status_code == 201

    # Any worker answers with what any worker wrote: the index is brought up to date first.
    for _ in range(4):
        names = client.get("/series/names", params={"prefix": metric_name})
        assert names.json() == [f"{metric_name}.cpu", f"{metric_name}.mem"]
    assert client.get("/series/names", params={"prefix": metric_name, "limit": 1}).json() == [f"{metric_name}.cpu"]
    tags = client.get("/series/tags", params={"name": f"{metric_name}.cpu"})
    assert tags.json() == ["env:prod", "host:a", "host:b"]
    assert client.get("/series/tags", params={"name": f"{metric_name}.cpu", "prefix": "host:"}).json() == [
        "host:a",
        "host:b",
    ]
    refused = client.get("/series/tags", params={"prefix": "host:"})
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "name"
