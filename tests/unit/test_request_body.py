"""Request.body: a trickling client is cut off with 408; a body past the limit with 413."""

from __future__ import annotations

import asyncio

import pytest

from telemetry_server.errors import PayloadTooLarge, RequestTimeout
from telemetry_server.http.request import Request
from telemetry_server.http.types import Message

SCOPE = {"type": "http", "method": "POST", "path": "/metrics", "headers": []}


def test_a_body_that_stops_arriving_is_a_408() -> None:
    async def trickle() -> Message:
        if not sent:
            sent.append(True)
            return {"type": "http.request", "body": b"[", "more_body": True}
        await asyncio.sleep(10)
        return {"type": "http.request", "body": b"]"}

    sent: list[bool] = []
    request = Request(SCOPE, trickle, 1024, body_timeout_seconds=0.05)
    with pytest.raises(RequestTimeout) as refused:
        asyncio.run(request.body())
    assert refused.value.status == 408


def test_chunks_past_the_limit_are_a_413_before_the_rest_is_read() -> None:
    reads = 0

    async def stream() -> Message:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": b"x" * 600, "more_body": True}

    with pytest.raises(PayloadTooLarge):
        asyncio.run(Request(SCOPE, stream, 1024).body())
    assert reads == 2
