"""Input at the edges, over a real socket to Granian: each is read as documented or refused with a clear 4xx."""

from __future__ import annotations

import httpx


def test_json_nested_past_the_parser_is_the_depth_422(client: httpx.Client) -> None:
    headers = {"content-type": "application/json"}
    refused = client.post("/metrics", content=b"[" * 2000 + b"]" * 2000, headers=headers)

    assert refused.status_code == 422
    assert refused.json()["errors"][0]["message"].endswith("(MAX_JSON_DEPTH)")


def test_a_long_id_is_not_repeated_whole(client: httpx.Client) -> None:
    refused = client.get("/metrics/" + "x" * 5000)

    assert refused.status_code == 404
    assert refused.json()["detail"] == "no metric with id " + "x" * 63 + "…"
