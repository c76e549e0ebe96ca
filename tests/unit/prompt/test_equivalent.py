"""A prompt's `equivalent` URL is itself a valid request, asking the same question."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from telemetry_server.errors import PromptNotUnderstood
from telemetry_server.prompt.grammar import parse_prompt
from telemetry_server.prompt.plugin import query_from_url
from telemetry_server.prompt.rendering import equivalent

from .test_grammar import CONTEXT, CORPUS, GRAMMAR_WORDS

WORDS = st.sampled_from([*GRAMMAR_WORDS.split(" "), "999999", "1000", "2027-01-01", "since", "count", "by"])


@settings(max_examples=400, deadline=None)
@given(st.lists(WORDS, max_size=12).map(" ".join))
def test_a_prompt_understood_has_an_equivalent_url_that_is_valid(prompt: str) -> None:
    with contextlib.suppress(PromptNotUnderstood):
        parsed = parse_prompt(prompt, CONTEXT)
        assert query_from_url(equivalent(parsed), CONTEXT).query == parsed.query


def test_every_corpus_equivalent_is_valid() -> None:
    for prompt, expected in CORPUS:
        if expected is not None:
            parsed = parse_prompt(prompt, CONTEXT)
            assert query_from_url(equivalent(parsed), CONTEXT).query == parsed.query
