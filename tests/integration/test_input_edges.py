"""Input at the edges, over a real socket to Granian: each is read as documented or refused with a clear 4xx."""

from __future__ import annotations

import httpx


def test_a_long_id_is_not_repeated_whole(client: httpx.Client) -> None:
    refused = client.get("/metrics/" + "x" * 5000)

    assert refused.status_code == 404
    assert refused.json()["detail"] == "no metric with id " + "x" * 63 + "…"
