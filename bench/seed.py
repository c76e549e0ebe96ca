"""Seed data through the public API (batch POST), keeping the ids that PUT, DELETE and GET-by-id scenarios use."""

from __future__ import annotations

import http.client
from collections.abc import Sequence
from typing import Any

import orjson

from bench.processes import LOOPBACK


class SeedError(RuntimeError):
    """The server refused a seed batch."""


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    content_type: str = "application/json",
    timeout: float = 60.0,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        headers = {"content-type": content_type} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def post_batches(port: int, bodies: Sequence[bytes]) -> list[str]:
    """POST each JSON array to /metrics on one keep-alive connection; return the ids in order."""
    ids: list[str] = []
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=120)
    try:
        for body in bodies:
            conn.request("POST", "/metrics", body=body, headers={"content-type": "application/json"})
            response = conn.getresponse()
            payload: Any = orjson.loads(response.read() or b"null")
            if response.status != 201:
                raise SeedError(f"seed batch answered {response.status}: {str(payload)[:300]}")
            ids.extend(payload["ids"])
    finally:
        conn.close()
    return ids


def write_lines(port: int, database: str, bodies: Sequence[bytes]) -> None:
    """Feed InfluxDB's /write with line-protocol batches (ms-precise ns timestamps)."""
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=120)
    try:
        for body in bodies:
            conn.request("POST", f"/write?db={database}", body=body, headers={"content-type": "text/plain"})
            response = conn.getresponse()
            text = response.read()
            if response.status != 204:
                raise SeedError(f"InfluxDB /write answered {response.status}: {text[:300]!r}")
    finally:
        conn.close()
