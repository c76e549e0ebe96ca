"""The LLM prompt parser end to end: a server with QUERY_LLM_URL against a chat completions API on loopback.

The API is tests/fake_llm.py, answering as OpenAI documents: a completion, malformed JSON, JSON the query
model refuses, no answer in time, a 500, something that is not a completion. Whatever the model does,
the answer is a query the model validation accepted, or the very 422 the rules give without a model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest

from telemetry_server.errors import PromptNotUnderstood
from telemetry_server.http.problems import problem_response
from telemetry_server.prompt.grammar import parse_prompt
from telemetry_server.prompt.model import PromptContext
from tests.fake_llm import FakeChatServer, Reply, completion, error_body, fake_chat_server
from tests.integration.conftest import ServerProcess

TIMEOUT_MS = 3000  # generous: the machine running the suite may be busy, and a late answer is a 422


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeChatServer]:
    with fake_chat_server() as fake:
        yield fake


@pytest.fixture(scope="module")
def llm_client(server_factory: Callable[..., ServerProcess], fake_llm: FakeChatServer) -> Iterator[httpx.Client]:
    server = server_factory(
        workers=1,  # one worker: one cache of the model's answers
        QUERY_LLM_URL=fake_llm.url,
        QUERY_LLM_MODEL="fake-model",
        QUERY_LLM_TIMEOUT_MS=str(TIMEOUT_MS),
        QUERY_LLM_API_KEY="sk-test-key",
    )
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        yield http


def ask(http: httpx.Client, prompt: str) -> httpx.Response:
    return http.get("/query", params={"prompt": prompt})


def answer(**fields: Any) -> bytes:
    return completion(orjson.dumps({"tags": [], **fields}).decode())


def test_a_prompt_the_rules_read_never_reaches_the_model(
    llm_client: httpx.Client, fake_llm: FakeChatServer, metric_name: str
) -> None:
    assert llm_client.post("/metrics", json={"name": metric_name, "value": 1.5}).status_code == 201
    prompt = f"average {metric_name} over the last hour"
    response = ask(llm_client, prompt)
    assert response.status_code == 200, response.text
    assert response.json()["interpretation"]["parser"] == "rules"
    assert prompt not in fake_llm.prompts_seen()


def test_the_model_reads_what_the_rules_cannot(
    llm_client: httpx.Client, fake_llm: FakeChatServer, metric_name: str
) -> None:
    prompt = f"how warm did the racks of {metric_name} run lately"
    fake_llm.replies[prompt] = Reply(answer(kind="aggregate", fn="max", name=metric_name, range="1h"))
    response = ask(llm_client, prompt)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["interpretation"]["parser"] == "llm"
    assert body["interpretation"]["kind"] == "aggregate"
    assert body["equivalent"].startswith(f"/metrics/aggregate?fn=max&name={metric_name}&from=")
    assert body["results"] == [{"value": None, "count": 0}]

    sent = fake_llm.seen[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer sk-test-key"
    assert sent.body["model"] == "fake-model"
    assert sent.body["response_format"]["type"] == "json_schema"
    assert sent.body["response_format"]["json_schema"]["strict"] is True

    again = ask(llm_client, prompt)
    assert again.status_code == 200
    assert fake_llm.prompts_seen().count(prompt) == 1  # remembered: the model is asked once


def test_the_model_may_answer_with_a_listing(
    llm_client: httpx.Client, fake_llm: FakeChatServer, metric_name: str
) -> None:
    prompt = f"pull up whatever {metric_name} logged, five of them"
    fake_llm.replies[prompt] = Reply(answer(kind="listing", name=metric_name, limit=5, order="desc"))
    response = ask(llm_client, prompt)
    assert response.status_code == 200, response.text
    assert response.json()["equivalent"] == f"/metrics?name={metric_name}&limit=5&sort=desc"


FAILURES = {
    "malformed JSON": Reply(completion('{"kind": "aggregate", "fn": ')),
    "JSON the query model refuses": Reply(answer(kind="aggregate", fn="avg", top=3, bucket="1h", where="$gt")),
    "a refusal": Reply(completion(None, refusal="I cannot help with that")),
    "an answer cut off": Reply(completion('{"kind": "agg', finish_reason="length")),
    "a 500": Reply(error_body("The server had an error while processing your request."), 500),
    "a 429": Reply(error_body("Rate limit reached", "rate_limit_exceeded"), 429),
    "no answer in time": Reply(answer(kind="aggregate", fn="count"), delay_seconds=TIMEOUT_MS / 1000 * 2),
    "not a completion": Reply(b"<html><body>502 Bad Gateway</body></html>"),
}


def rules_refusal(prompt: str) -> dict[str, Any]:
    """The problem body a server without a model sends: the rules' refusal, rendered as the server renders it.

    The prompts are several unknown words, whose refusal does not depend on the names stored (asking the
    shared test server instead would make its workers cache the names before other tests seed theirs).
    """
    context = PromptContext(datetime.now(UTC), "UTC", ())
    with pytest.raises(PromptNotUnderstood) as refused:
        parse_prompt(prompt, context)
    body: dict[str, Any] = orjson.loads(problem_response(refused.value, "-").body)
    return body


@pytest.mark.parametrize("failure", list(FAILURES))
def test_whatever_the_model_does_wrong_the_answer_is_the_rules_422(
    llm_client: httpx.Client, fake_llm: FakeChatServer, failure: str
) -> None:
    prompt = f"zorbulate the quibbles {failure.replace(' ', '')}"
    fake_llm.replies[prompt] = FAILURES[failure]
    response = ask(llm_client, prompt)
    assert prompt in fake_llm.prompts_seen()
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    refused, expected = response.json(), rules_refusal(prompt)
    for key in ("type", "title", "status", "detail", "not_understood", "errors", "examples"):
        assert refused[key] == expected[key], key
