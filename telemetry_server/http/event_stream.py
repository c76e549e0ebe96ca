"""Held answers: a feed of events sent as Server-Sent Events on an open response, or over a WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Sequence
from typing import NamedTuple, Protocol

import orjson

from telemetry_server.errors import AppError
from telemetry_server.http.types import Receive, Send

log = logging.getLogger("telemetry_server.streams")

EVENT_STREAM = b"text/event-stream; charset=utf-8"
_SSE_HEADERS = [
    (b"content-type", EVENT_STREAM),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # proxies that buffer answers (nginx) pass each event on at once
]
_SSE_KEEP_ALIVE = b": keep-alive\n\n"
_SSE_END = {"type": "http.response.body", "body": b"", "more_body": False}
# A WebSocket client's `{"resume": id}` is read if it comes this soon after the connection opens; the events
# that arrive meanwhile wait in the subscriber's queue, so waiting delays the first of them and loses none.
RESUME_WAIT_SECONDS = 0.3
_GOING_AWAY = 1001
_CLOSE_WAIT_SECONDS = 1.0
_REFUSED_BASE = 4000  # a refusal closes with 4000 + its HTTP status (4401, 4403, 4429...)


class Frame(Protocol):
    def sse(self) -> bytes: ...
    def ws(self) -> str: ...


class Feed(Protocol):
    async def start(self, resume: str | None) -> None: ...
    async def next(self, wait_seconds: float) -> Sequence[Frame] | None: ...
    def close(self) -> None: ...


class EventStream(NamedTuple):
    """What a handler returns instead of a Response to hold the connection open: the feed has its subscriber
    registered already; SSE has `start`ed it (Last-Event-ID), a WebSocket starts it with the client's first
    message."""

    feed: Feed
    keepalive_seconds: float
    retry_ms: int  # how long an SSE client waits before reconnecting
    keepalive: Frame  # sent over a WebSocket when idle (SSE sends a comment)


async def send_event_stream(send: Send, receive: Receive, stream: EventStream) -> None:
    """The events as `text/event-stream` until the feed ends (then the response ends) or the client leaves."""
    try:
        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
        await send({"type": "http.response.body", "body": b"retry: %d\n\n" % stream.retry_ms, "more_body": True})
        await _until_either(_pump_sse(send, stream), _http_disconnect(receive))
    finally:
        stream.feed.close()


async def _pump_sse(send: Send, stream: EventStream) -> None:
    while (frames := await stream.feed.next(stream.keepalive_seconds)) is not None:
        body = b"".join([frame.sse() for frame in frames]) if frames else _SSE_KEEP_ALIVE
        await send({"type": "http.response.body", "body": body, "more_body": True})
    await send(_SSE_END)


async def _http_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def serve_websocket(send: Send, receive: Receive, stream: EventStream) -> None:
    """Accept, read an optional first `{"resume": id}`, then send one text message per event until the feed
    ends (close 1001) or the client leaves. A refusal of the resume closes with 4000 + its status."""
    first: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
    try:
        await send({"type": "websocket.accept"})
        reader = asyncio.ensure_future(_websocket_inbox(receive, first))
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RESUME_WAIT_SECONDS):
                    await asyncio.shield(first)
            try:
                await stream.feed.start(_resume_of(first.result() if first.done() else None))
            except AppError as exc:
                await close_websocket(send, _REFUSED_BASE + exc.status, exc.detail)
                return
            await _until_either(_pump_websocket(send, stream, reader), reader)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
    finally:
        stream.feed.close()


async def refuse_websocket(send: Send, receive: Receive, status: int, detail: str) -> None:
    """A refusal the client can read (a close before accepting would only say 403): accept, then close."""
    if (await receive())["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    await close_websocket(send, _REFUSED_BASE + status, detail)


async def close_websocket(send: Send, code: int, reason: str) -> None:
    # A close frame's reason is at most 123 bytes.
    await send({"type": "websocket.close", "code": code, "reason": reason.encode()[:123].decode(errors="ignore")})


async def _pump_websocket(send: Send, stream: EventStream, inbox: asyncio.Future[None]) -> None:
    while (frames := await stream.feed.next(stream.keepalive_seconds)) is not None:
        for frame in frames or (stream.keepalive,):
            await send({"type": "websocket.send", "text": frame.ws()})
    await close_websocket(send, _GOING_AWAY, "stream ended")
    # The client's answering close, briefly: a worker that is stopping exits once this returns, and the close
    # frame might not have left by then.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(_CLOSE_WAIT_SECONDS):
            await asyncio.shield(inbox)


async def _websocket_inbox(receive: Receive, first: asyncio.Future[str | None]) -> None:
    """Reads until the client leaves: its first message (if any) resolves `first`; later ones are ignored."""
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            if not first.done():
                first.set_result(None)
            return
        if message["type"] == "websocket.receive" and not first.done():
            first.set_result(message.get("text") or (message.get("bytes") or b"").decode(errors="replace"))


def _resume_of(message: str | None) -> str | None:
    """`{"resume": "<event id>"}`; anything else is refused by the feed as an id it did not send."""
    if message is None:
        return None
    try:
        document = orjson.loads(message)
    except orjson.JSONDecodeError:
        return message
    resume = document.get("resume") if isinstance(document, dict) else None
    return resume if isinstance(resume, str) else message


async def _until_either(pump: Awaitable[None], watch: Awaitable[None]) -> None:
    """Run the pump until it ends or the watcher (the client leaving) does; an error ends the stream, which
    the client resumes from its last event id."""
    tasks = [asyncio.ensure_future(pump), asyncio.ensure_future(watch)]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            log.info("a stream ended early: %r", task.exception())
