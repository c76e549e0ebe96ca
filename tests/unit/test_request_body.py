"""Request: a trickling body is a 408, one past the limit a 413 (also once gunzipped), another content coding a
415; nesting past the parser's limit is the depth 422; raw UTF-8 in the query string is UTF-8."""

from __future__ import annotations

import asyncio

import pytest

from telemetry_server.errors import BadRequest, PayloadTooLarge, RequestTimeout, ValidationFailed
from telemetry_server.http.request import Request
from telemetry_server.http.types import Message, Receive

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


def receiving(body: bytes) -> Receive:
    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def json_request(body: bytes, *headers: tuple[bytes, bytes], limit: int = 1024) -> Request:
    scope = {**SCOPE, "headers": [(b"content-type", b"application/json"), *headers]}
    return Request(scope, receiving(body), limit)


def test_json_deeper_than_the_parser_goes_is_the_same_422_as_past_the_depth_limit() -> None:
    beyond_orjson = b"[" * 5000 + b"]" * 5000
    past_ours = b"[" * 40 + b"]" * 40
    with pytest.raises(ValidationFailed) as parser:
        asyncio.run(json_request(beyond_orjson, limit=1 << 20).json())
    with pytest.raises(ValidationFailed) as ours:
        asyncio.run(json_request(past_ours).json())

    assert parser.value.errors[0].message == "nests deeper than 32 levels (MAX_JSON_DEPTH)"
    assert parser.value.errors[0].message == ours.value.errors[0].message


def test_raw_utf8_in_the_query_string_is_utf8() -> None:
    scope = {**SCOPE, "query_string": "tag=région:é&name=x".encode()}
    request = Request(scope, receiving(b""), 1024)

    assert request.query == [("tag", "région:é"), ("name", "x")]
    assert request.query_string == "tag=région:é&name=x"


def test_a_query_string_that_is_not_utf8_is_a_400() -> None:
    request = Request({**SCOPE, "query_string": b"tag=r\xe9gion"}, receiving(b""), 1024)
    with pytest.raises(BadRequest, match="UTF-8"):
        _ = request.query
