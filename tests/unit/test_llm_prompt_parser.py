"""LlmPromptParser over an in-process transport: when it asks, what it remembers, and how it gives up."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
import orjson
import pytest

from telemetry_server.errors import PromptNotUnderstood, ValidationFailed
from telemetry_server.models.aggregation import AggregateQuery
from telemetry_server.prompt.grammar import parse_prompt
from telemetry_server.prompt.model import PromptContext
from telemetry_server.prompt.plugin import PromptRequest
from telemetry_server.services.llm_prompt_parser import CACHE_TTL_SECONDS, LlmPromptParser
from telemetry_server.services.query_service import QueryService
from tests.fake_llm import completion

CONTEXT = PromptContext(datetime(2026, 11, 27, 15, 30, tzinfo=UTC), "UTC", ("cpu.load",))
ANSWER = completion('{"kind": "aggregate", "fn": "max", "name": "cpu.load", "tags": []}')


class Model:
    """Counts the calls and answers each with `reply` after `delay` seconds."""

    def __init__(self, reply: bytes = ANSWER, status: int = 200, delay: float = 0.0) -> None:
        self.reply, self.status, self.delay = reply, status, delay
        self.calls: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        await asyncio.sleep(self.delay)
        return httpx.Response(self.status, content=self.reply)


def client_for(model: Model) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url="http://llm.test/v1", transport=httpx.MockTransport(model))


def parser_for(model: Model, now: list[float] | None = None, timeout: float = 1.0) -> LlmPromptParser:
    clock = now or [0.0]
    return LlmPromptParser(client_for(model), "tiny", timeout, clock=lambda: clock[0])


def not_understood(prompt: str) -> PromptRequest:
    try:
        parse_prompt(prompt, CONTEXT)
    except PromptNotUnderstood as exc:
        return PromptRequest(prompt, CONTEXT, None, exc)
    raise AssertionError(f"the rules read {prompt!r}")


def test_it_asks_only_for_prompts_the_rules_refuse_and_remembers_the_answer() -> None:
    model = Model()
    now = [0.0]

    async def run() -> None:
        parser = parser_for(model, now)
        rules = parse_prompt("max cpu.load", CONTEXT)
        assert await parser(PromptRequest("max cpu.load", CONTEXT, rules, None)) is None
        assert model.calls == []
        request = not_understood("how hot did it run")
        first = await parser(request)
        assert first is not None
        assert isinstance(first.query, AggregateQuery)
        assert first.parser == "llm"
        assert await parser(request) == first
        assert len(model.calls) == 1
        assert model.calls[0].url == "http://llm.test/v1/chat/completions"
        assert orjson.loads(model.calls[0].content)["model"] == "tiny"
        now[0] += CACHE_TTL_SECONDS + 1
        await parser(request)
        assert len(model.calls) == 2  # an answer is remembered for a minute only
        await parser.aclose()

    asyncio.run(run())


def test_a_burst_of_one_prompt_asks_once() -> None:
    model = Model(delay=0.05)

    async def run() -> None:
        parser = parser_for(model)
        request = not_understood("how hot did it run")
        answers = await asyncio.gather(*(parser(request) for _ in range(5)))
        assert len(model.calls) == 1
        assert all(answer == answers[0] for answer in answers)
        await parser.aclose()

    asyncio.run(run())


@pytest.mark.parametrize(
    "model",
    [Model(delay=5.0), Model(status=503, reply=b'{"error": {"message": "loading"}}'), Model(reply=b"not json")],
)
def test_no_usable_completion_in_time_keeps_the_rules_reading_and_is_not_remembered(model: Model) -> None:
    async def run() -> None:
        parser = parser_for(model, timeout=0.05)
        request = not_understood("how hot did it run")
        assert await parser(request) is None
        assert await parser(request) is None
        assert len(model.calls) == 2
        await parser.aclose()

    asyncio.run(run())


def test_an_answer_the_query_model_refuses_is_refused() -> None:
    model = Model(reply=completion('{"kind": "aggregate", "fn": "mode"}'))

    async def run() -> None:
        parser = parser_for(model)
        with pytest.raises(ValidationFailed):
            await parser(not_understood("how hot did it run"))
        await parser.aclose()

    asyncio.run(run())


def test_the_query_service_closes_its_parser() -> None:
    async def run() -> None:
        client = client_for(Model())
        service = QueryService(None, None, None, plugin=LlmPromptParser(client, "tiny", 1.0))  # type: ignore[arg-type]
        await service.aclose()
        assert client.is_closed

    asyncio.run(run())
