"""A stand-in for an OpenAI-compatible chat completions API, answering as the OpenAI API reference documents.

`completion()` builds a chat completion body; `FakeChatServer` serves `POST /v1/chat/completions` on a
loopback port from a thread, answering each prompt (the last user message) as told: a completion holding
some content, an error status with OpenAI's error body, a completion after a delay, or raw bytes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson


def completion(content: Any, finish_reason: str = "stop", refusal: str | None = None) -> bytes:
    """A `chat.completion` object with one choice."""
    message = {"role": "assistant", "content": content, "refusal": refusal}
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
    usage = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
    reply = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "fake", "choices": [choice]}
    return orjson.dumps({**reply, "usage": usage})


def error_body(message: str, kind: str = "server_error") -> bytes:
    return orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": None}})


@dataclass(frozen=True)
class Reply:
    """How the fake answers one prompt."""

    body: bytes
    status: int = 200
    delay_seconds: float = 0.0


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakeChatServer:
    replies: dict[str, Reply] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    url: str = ""

    def prompts_seen(self) -> list[str]:
        return [request.body["messages"][-1]["content"] for request in self.seen]

    def answer(self, path: str, headers: dict[str, str], raw: bytes) -> Reply:
        body = orjson.loads(raw)
        self.seen.append(Seen(path, headers, body))
        if path != "/v1/chat/completions":
            return Reply(error_body(f"Unknown request URL: POST {path}", "invalid_request_error"), 404)
        prompt = body["messages"][-1]["content"]
        return self.replies.get(prompt, Reply(error_body(f"no reply set for {prompt!r}"), 500))


@contextmanager
def fake_chat_server() -> Iterator[FakeChatServer]:
    fake = FakeChatServer()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length", "0")))
            reply = fake.answer(self.path, {k.lower(): v for k, v in self.headers.items()}, raw)
            time.sleep(reply.delay_seconds)
            self.send_response(reply.status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
