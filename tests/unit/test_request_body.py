"""Request: a trickling body is a 408, one past the limit a 413 (also once gunzipped), another content coding a
415; nesting past the parser's limit is the depth 422; raw UTF-8 in the query string is UTF-8."""

from __future__ import annotations

import asyncio
import gzip

import pytest

from telemetry_server.errors import (
    BadRequest,
    PayloadTooLarge,
    RequestTimeout,
    UnsupportedContentEncoding,
    ValidationFailed,
)
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


GZIP = (b"content-encoding", b"gzip")


@pytest.mark.parametrize("coding", [b"gzip", b"GZIP", b"x-gzip", b"identity, gzip", b" gzip "])
def test_a_gzipped_body_is_decoded(coding: bytes) -> None:
    request = json_request(gzip.compress(b'{"name": "cpu.load"}'), (b"content-encoding", coding))

    assert asyncio.run(request.json()) == {"name": "cpu.load"}


def test_concatenated_gzip_members_are_one_body() -> None:
    request = json_request(gzip.compress(b'{"name": ') + gzip.compress(b'"cpu.load"}'), GZIP)

    assert asyncio.run(request.json()) == {"name": "cpu.load"}


def test_identity_is_no_coding_at_all() -> None:
    assert asyncio.run(json_request(b"[1]", (b"content-encoding", b"identity")).json()) == [1]


def test_a_body_past_the_limit_once_decompressed_is_a_413() -> None:
    bomb = gzip.compress(b"[" + b" " * 2_000_000 + b"]")  # 2 MB of JSON in 2 KB
    with pytest.raises(PayloadTooLarge, match="once decompressed"):
        asyncio.run(json_request(bomb, GZIP, limit=200_000).body())


def test_a_body_exactly_at_the_limit_once_decompressed_is_read() -> None:
    body = b"[" + b"1," * 499 + b"1]"
    assert asyncio.run(json_request(gzip.compress(body), GZIP, limit=len(body)).body()) == body


@pytest.mark.parametrize("body", [b"not gzip", gzip.compress(b"[1, 2, 3]")[:-12]])
def test_a_body_that_is_not_gzip_is_a_400(body: bytes) -> None:
    with pytest.raises(BadRequest, match="gzip"):
        asyncio.run(json_request(body, GZIP).body())


@pytest.mark.parametrize("coding", [b"br", b"deflate", b"zstd", b"gzip, gzip", b"compress", b"gzip, br"])
def test_a_coding_we_do_not_decode_is_a_415_naming_the_one_we_do(coding: bytes) -> None:
    with pytest.raises(UnsupportedContentEncoding) as refused:
        asyncio.run(json_request(b"[1]", (b"content-encoding", coding)).body())
    assert refused.value.status == 415
    assert refused.value.headers() == [(b"accept-encoding", b"gzip")]


def test_two_content_encoding_headers_count_as_two_codings() -> None:
    with pytest.raises(UnsupportedContentEncoding):
        asyncio.run(json_request(gzip.compress(gzip.compress(b"[1]")), GZIP, GZIP).body())


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
