"""schemathesis against live servers: every operation, with and without auth, finds no 5xx and no answer the
OpenAPI document does not describe. Bounded: 25 examples per operation. The servers use their own database
(APP_ENV=fuzz), dropped afterwards, so generated metrics and keys never reach the shared test database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from pymongo import MongoClient
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.transport.serialization import serialize_binary

from telemetry_server.auth.keys import generate_key
from tests.integration.conftest import ServerProcess

APP_ENV = "fuzz"


@schemathesis.serializer("application/x-protobuf")
def protobuf_body(ctx: Any, value: Any) -> bytes:
    """The agents' protobuf bodies (remote_write, OTLP): what is generated is sent as bytes, to be refused."""
    return serialize_binary(value) if isinstance(value, bytes | str) else orjson.dumps(value)


EXAMPLES_PER_OPERATION = 25
# Live streams answer 200 and never end: a client reading the whole answer would wait out its timeout every
# time. Their answers are checked in test_streams.py.
HELD_OPEN = frozenset({"/metrics/stream", "/metrics/ws"})
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
ADMIN_KEY = generate_key()[0]


@pytest.fixture(scope="module")
def fuzz_database(mongo_uri: str) -> Iterator[None]:
    yield
    with MongoClient(mongo_uri, serverSelectionTimeoutMS=5000) as client:
        client.drop_database(f"telemetry_server_{APP_ENV}")


def fuzz(base_url: str, headers: dict[str, str]) -> list[str]:
    """Run every operation; return one line per operation that failed a check."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path in HELD_OPEN:
            continue

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS, timeout=30)

        try:
            run()
        except Exception as exc:
            failures.append(f"{operation.label}: {exc}"[:2000])
    return failures


@pytest.mark.usefixtures("fuzz_database")
@pytest.mark.parametrize("auth", ["off", "on"])
def test_no_server_errors_and_no_undocumented_answers(server_factory: Callable[..., ServerProcess], auth: str) -> None:
    if auth == "off":
        server = server_factory(workers=1, APP_ENV=APP_ENV, AUTH_ENABLED="false")
        headers: dict[str, str] = {}
    else:
        server = server_factory(workers=1, APP_ENV=APP_ENV, AUTH_ENABLED="true", BOOTSTRAP_ADMIN_KEY=ADMIN_KEY)
        headers = {"authorization": f"Bearer {ADMIN_KEY}"}
    failures = fuzz(server.base_url, headers)
    assert not failures, "\n\n".join(failures)


def test_without_a_key_every_protected_operation_is_401(server_factory: Callable[..., ServerProcess]) -> None:
    """The auth-on server, fuzzed with no key at all: only 401s (429s once the address has failed
    AUTH_FAILURE_BURST times) and the open routes may come back."""
    server = server_factory(workers=1, APP_ENV=APP_ENV, AUTH_ENABLED="true")
    assert not fuzz(server.base_url, {})
