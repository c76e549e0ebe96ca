"""Drive an ASGI app in-process: build the scope, feed the body in chunks, collect what the app sends."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from telemetry_server.http.types import ASGIApp, Message

_NO_JSON = object()


@dataclass(frozen=True)
class Reply:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    received: int  # how many `receive` messages the app consumed

    def header(self, name: str) -> str | None:
        values = [v.decode() for k, v in self.headers if k.decode().lower() == name.lower()]
        assert len(values) <= 1, f"header {name} sent {len(values)} times"
        return values[0] if values else None

    def json(self) -> Any:
        return orjson.loads(self.body)


async def request(
    app: ASGIApp,
    method: str,
    path: str,
    *,
    query: str = "",
    json: Any = _NO_JSON,
    body: bytes = b"",
    chunks: Sequence[bytes] | None = None,
    content_type: str | None = "application/json",
    headers: Sequence[tuple[str, str]] = (),
) -> Reply:
    """One HTTP request. `chunks` streams the body without a content-length; otherwise one is declared."""
    if json is not _NO_JSON:
        body = orjson.dumps(json)
    raw_headers = [(k.lower().encode(), v.encode()) for k, v in headers]
    if content_type is not None:
        raw_headers.append((b"content-type", content_type.encode()))
    if chunks is None:
        chunks = [body]
        if not any(k == b"content-length" for k, _ in raw_headers):
            raw_headers.append((b"content-length", str(len(body)).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": raw_headers,
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    inbox: list[Message] = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1} for i, chunk in enumerate(chunks)
    ]
    received = 0
    sent: list[Message] = []

    async def receive() -> Message:
        nonlocal received
        received += 1
        return inbox.pop(0) if inbox else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"], sent
    assert not sent[1].get("more_body", False)
    return Reply(sent[0]["status"], list(sent[0]["headers"]), sent[1]["body"], received)


class Lifespan:
    """The app's lifespan protocol run as a task: `startup()` and `shutdown()` return what the app answered."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._outbox: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.finished = False

    async def startup(self) -> Message:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}}
        self._task = asyncio.create_task(self._app(scope, self._inbox.get, self._outbox.put))
        await self._inbox.put({"type": "lifespan.startup"})
        message = await self._next()
        if message["type"] != "lifespan.startup.complete":
            await self._task
            self.finished = True
        return message

    async def shutdown(self) -> Message:
        assert self._task is not None
        await self._inbox.put({"type": "lifespan.shutdown"})
        message = await self._next()
        await self._task
        self.finished = True
        return message

    async def _next(self) -> Message:
        """The next message, or a failure if the app returns without sending one (rather than a hang)."""
        assert self._task is not None
        getter = asyncio.ensure_future(self._outbox.get())
        await asyncio.wait({getter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if not getter.done():
            getter.cancel()
            self._task.result()  # re-raises what the app raised
            raise AssertionError("the app ended its lifespan without answering")
        return getter.result()


class AppClient:
    """Synchronous requests against an app, on one event loop shared with its lifespan."""

    def __init__(self, app: ASGIApp, runner: asyncio.Runner) -> None:
        self._app = app
        self._runner = runner

    def request(self, method: str, path: str, **kwargs: Any) -> Reply:
        return self._runner.run(request(self._app, method, path, **kwargs))

    def get(self, path: str, **kwargs: Any) -> Reply:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Reply:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> Reply:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Reply:
        return self.request("DELETE", path, **kwargs)
