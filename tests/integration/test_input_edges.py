"""Input at the edges, over a real socket to Granian: each is read as documented or refused with a clear 4xx."""

from __future__ import annotations

import gzip
import socket
from urllib.parse import quote, urlsplit

import httpx
import orjson


def raw_get(base_url: str, target: bytes) -> tuple[int, dict[str, object]]:
    """GET with the request target sent byte for byte (httpx would percent-encode it)."""
    address = urlsplit(base_url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as connection:
        connection.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), orjson.loads(body)


def test_a_gzipped_batch_is_stored(client: httpx.Client, metric_name: str) -> None:
    body = gzip.compress(orjson.dumps([{"name": metric_name, "value": n} for n in range(3)]))
    headers = {"content-type": "application/json", "content-encoding": "gzip"}

    assert client.post("/metrics", content=body, headers=headers).status_code == 201
    assert len(client.get("/metrics", params={"name": metric_name}).json()["items"]) == 3


def test_a_content_encoding_we_do_not_decode_is_a_415(client: httpx.Client, metric_name: str) -> None:
    headers = {"content-type": "application/json", "content-encoding": "br"}
    refused = client.post("/metrics", content=orjson.dumps({"name": metric_name, "value": 1}), headers=headers)

    assert refused.status_code == 415
    assert refused.headers["accept-encoding"] == "gzip"
    assert "Content-Encoding 'br'" in refused.json()["detail"]


def test_raw_utf8_in_the_query_string_is_utf8(client: httpx.Client, base_url: str, metric_name: str) -> None:
    assert client.post("/metrics", json={"name": metric_name, "tags": ["région:é"], "value": 1}).status_code == 201

    status, raw = raw_get(base_url, f"/metrics?name={metric_name}&tag=région:é".encode())
    escaped = client.get(f"/metrics?name={metric_name}&tag={quote('région:é')}").json()

    assert status == 200
    assert raw == escaped
    assert [item["tags"] for item in raw["items"]] == [["région:é"]]  # type: ignore[union-attr]


def test_timestamps_float_would_read_are_refused(base_url: str, metric_name: str) -> None:
    for value in ("٣", "1_000", "2026-W48-5T10:00:00Z"):
        status, problem = raw_get(base_url, f"/metrics?name={metric_name}&from={value}".encode())
        assert status == 422
        assert [error["field"] for error in problem["errors"]] == ["from"]  # type: ignore[union-attr]


def test_json_nested_past_the_parser_is_the_depth_422(client: httpx.Client) -> None:
    headers = {"content-type": "application/json"}
    refused = client.post("/metrics", content=b"[" * 2000 + b"]" * 2000, headers=headers)

    assert refused.status_code == 422
    assert refused.json()["errors"][0]["message"].endswith("(MAX_JSON_DEPTH)")


def test_a_long_id_is_not_repeated_whole(client: httpx.Client) -> None:
    refused = client.get("/metrics/" + "x" * 5000)

    assert refused.status_code == 404
    assert refused.json()["detail"] == "no metric with id " + "x" * 63 + "…"
