"""Responses are immutable data: a handler may share one as a constant, and sending never changes it."""

from __future__ import annotations

import asyncio

import pytest

from telemetry_server.http.responses import json_response, send_response
from telemetry_server.http.types import Message


def test_a_response_cannot_be_changed() -> None:
    response = json_response({"status": "ok"})

    with pytest.raises(AttributeError):
        response.status = 500  # type: ignore[misc]


def test_a_response_keeps_its_own_copy_of_the_headers() -> None:
    headers = [(b"x-cache", b"hit")]
    response = json_response({}, headers=headers)
    headers.append((b"x-other", b"1"))

    assert response.headers == ((b"x-cache", b"hit"),)


def test_extra_headers_go_out_without_changing_a_shared_response() -> None:
    shared = json_response({"status": "ok"}, headers=[(b"x-cache", b"hit")])
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(send_response(send, shared, [(b"ratelimit-remaining", b"9")]))

    assert (b"ratelimit-remaining", b"9") in sent[0]["headers"]
    assert shared.headers == ((b"x-cache", b"hit"),)
    assert sent[1]["body"] == b'{"status":"ok"}'
