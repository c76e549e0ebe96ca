"""LlmPromptParser: the QUERY_PARSER that asks an OpenAI-compatible chat completions API, behind the rules.

The rules answer first: they are exact, fast and free. Only a prompt they do not understand is sent to
the model (`POST {QUERY_LLM_URL}/chat/completions`), and its answer is checked by prompt/llm.py like any
client's query. A model that is slow, down, or answers with something other than a completion is logged
and the rules' 422 stands: the model backs the rules up, it is never needed to serve a request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import httpx
import orjson

from telemetry_server.prompt.llm import chat_request, read_answer, read_chat_reply
from telemetry_server.prompt.model import ParsedPrompt, PromptContext
from telemetry_server.prompt.plugin import PromptRequest
from telemetry_server.services.local_cache import LocalCache
from telemetry_server.services.single_flight import SingleFlight

log = logging.getLogger("telemetry_server.query.llm")

MAX_REPLY_BYTES = 256 * 1024  # a completion of MAX_ANSWER_TOKENS is a few KiB; more is not an answer
CACHE_ENTRIES = 1024
# A remembered answer may hold a window the model worked out from the clock ("today"), so it is kept for
# one minute only: long enough for a dashboard repeating a question, short enough to follow the clock.
CACHE_TTL_SECONDS = 60.0
_ANY = "llm"  # the LocalCache dependency key of every answer: nothing but time invalidates them


class LlmPromptParser:
    """One per worker, created in the lifespan (its connection pool must not cross a fork); `aclose()` it."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        model: str,
        timeout_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._model = model
        self._timeout = timeout_seconds
        self._answers = LocalCache(CACHE_ENTRIES, CACHE_TTL_SECONDS, clock)
        self._flights: SingleFlight[str | None] = SingleFlight()  # a burst of one prompt asks once

    @classmethod
    def connect(
        cls,
        url: str,
        model: str,
        timeout_seconds: float,
        api_key: str | None = None,
        on_request: Callable[[httpx.Request], Awaitable[None]] | None = None,
    ) -> LlmPromptParser:
        """`on_request` sees every request before it is sent (tracing adds the trace context's headers)."""
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        hooks = {"request": [on_request]} if on_request is not None else {}
        client = httpx.AsyncClient(base_url=url, headers=headers, timeout=timeout_seconds, event_hooks=hooks)
        return cls(client, model, timeout_seconds)

    async def __call__(self, request: PromptRequest) -> ParsedPrompt | None:
        if request.rules is not None:
            return None
        content = await self._content(request.prompt, request.context)
        return None if content is None else read_answer(content, request.context)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _content(self, prompt: str, context: PromptContext) -> str | None:
        key = f"{context.tz}\n{prompt}"
        remembered = self._answers.get(key)
        if remembered is not None:
            return remembered.decode()
        return await self._flights.do(key, lambda: self._ask(key, prompt, context))

    async def _ask(self, key: str, prompt: str, context: PromptContext) -> str | None:
        """The model's answer, remembered; None (logged) when there is no usable completion in time."""
        version = self._answers.version(_ANY)
        body = orjson.dumps(chat_request(prompt, context, self._model))
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._timeout):
                reply = await self._post(body)
        except TimeoutError:
            log.warning("the LLM gave no answer within %g s; the rules' reading stands", self._timeout)
            return None
        except httpx.HTTPError as exc:
            log.warning("the LLM is unreachable (%s: %s); the rules' reading stands", type(exc).__name__, exc)
            return None
        if reply is None:
            return None
        try:
            content = read_chat_reply(reply)
        except ValueError as exc:
            log.warning("the LLM's reply is unusable (%s); the rules' reading stands", exc)
            return None
        log.info("the LLM answered in %.0f ms", (time.perf_counter() - started) * 1000)
        self._answers.put(key, _ANY, content.encode(), version)
        return content

    async def _post(self, body: bytes) -> bytes | None:
        headers = {"content-type": "application/json"}
        async with self._client.stream("POST", "chat/completions", content=body, headers=headers) as response:
            reply = bytearray()
            async for chunk in response.aiter_bytes():
                reply += chunk
                if len(reply) > MAX_REPLY_BYTES:
                    log.warning("the LLM's reply is over %d bytes; the rules' reading stands", MAX_REPLY_BYTES)
                    return None
            if response.status_code != 200:
                shown = reply[:200].decode(errors="replace")
                log.warning("the LLM answered %d (%s); the rules' reading stands", response.status_code, shown)
                return None
            return bytes(reply)
