"""The LLM prompt parser against a real OpenAI-compatible server: llama.cpp's llama-server and SmolLM2-135M.

`scripts/llm.sh build` compiles the server once per machine (see docs/query.md for how long that takes);
where it has not been built, or does not start, these tests are skipped and say why. A model this small
reads prompts poorly: what is checked is the protocol (the server honours the JSON schema it is sent,
and its answers go through the query model's validation), not the model's judgement.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest

from telemetry_server import engines
from telemetry_server.errors import ValidationFailed
from telemetry_server.prompt.llm import ANSWER_SCHEMA, chat_request, read_answer, read_chat_reply
from telemetry_server.prompt.model import PromptContext
from tests.integration.conftest import ROOT, ServerProcess

SCRIPT = ROOT / "scripts" / "llm.sh"
READY_SECONDS = 60.0  # loading a 98 MB model takes seconds; a minute allows for a busy machine
ANSWER_SECONDS = 120.0
PROMPT = "how warm did the racks run, on the whole, across the last three hours"


@pytest.fixture(scope="module")
def llm_url(work_dir: Path) -> Iterator[str]:
    if subprocess.run(["bash", str(SCRIPT), "built"], check=False).returncode != 0:
        pytest.skip("no local llama-server: `scripts/llm.sh build` compiles one once per machine (docs/query.md)")
    port = engines.free_port()
    log_path = work_dir / "llama-server.log"
    try:
        server = engines.start("llm", ["bash", str(SCRIPT), "start", str(port)], port, log_path)
    except engines.EngineError as exc:
        pytest.skip(f"llama-server did not start: {exc}")
    try:
        if not _healthy(port, time.monotonic() + READY_SECONDS):
            pytest.skip(f"llama-server did not load its model in {READY_SECONDS:g} s; see {log_path}")
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        engines.stop_pid(server.pid)


def _healthy(port: int, deadline: float) -> bool:
    """llama-server answers /health with 503 while it loads the model, then 200."""
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return False


def test_the_server_answers_within_the_schema_and_the_answer_is_validated(llm_url: str) -> None:
    context = PromptContext(datetime.now(UTC), "UTC", ("cpu.load", "disk.used", "rack.temperature"))
    body = orjson.dumps(chat_request(PROMPT, context, "smollm2"))
    reply = httpx.post(f"{llm_url}/chat/completions", content=body, timeout=ANSWER_SECONDS)
    assert reply.status_code == 200, reply.text
    content = read_chat_reply(reply.content)
    answer = orjson.loads(content)  # the grammar the schema became keeps even a tiny model to JSON ...
    assert isinstance(answer, dict)
    assert set(answer) <= set(ANSWER_SCHEMA["properties"])  # ... and to the schema's fields
    try:
        parsed = read_answer(content, context)
    except ValidationFailed:
        return  # the model asked for a query the model validation refuses: the 422 path, tested elsewhere
    assert parsed.parser == "llm"


def test_a_server_using_it_answers_with_a_query_or_the_rules_422(
    llm_url: str, server_factory: Callable[..., ServerProcess]
) -> None:
    server = server_factory(
        workers=1,
        QUERY_LLM_URL=llm_url,
        QUERY_LLM_MODEL="smollm2",
        QUERY_LLM_TIMEOUT_MS=str(int(ANSWER_SECONDS * 1000)),
    )
    response = httpx.get(f"{server.base_url}/query", params={"prompt": PROMPT}, timeout=ANSWER_SECONDS + 30)
    assert response.status_code in (200, 422), response.text
    if response.status_code == 200:
        assert response.json()["interpretation"]["parser"] == "llm"
    else:
        assert response.json()["type"].endswith("prompt_not_understood")
