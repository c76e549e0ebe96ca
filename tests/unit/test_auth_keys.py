"""Keys as pure data: format, hashing, header parsing, roles, the admin request body."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from telemetry_server.auth.keys import (
    ApiKey,
    Role,
    generate_key,
    hash_secret,
    parse_authorization,
    parse_key,
    parse_key_request,
)
from telemetry_server.errors import ValidationFailed

NOW = datetime(2026, 11, 27, tzinfo=UTC)


def test_generated_keys_parse_back_and_differ() -> None:
    text, presented = generate_key()
    assert text.startswith("tsk_")
    assert parse_key(text) == presented
    assert len(presented.secret) == 43  # 256 bits in base64url
    assert generate_key()[0] != text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "tsk_",
        "tsk_0123456789abcdef_short",
        "tsk_0123456789ABCDEF_" + "a" * 43,
        "xyz_0123456789abcdef_" + "a" * 43,
        "tsk_0123456789abcdef_" + "a" * 44,
        " tsk_0123456789abcdef_" + "a" * 43,
        "tsk_0123456789abcdef_" + "+" * 43,
    ],
)
def test_malformed_keys_do_not_parse(text: str) -> None:
    assert parse_key(text) is None


def test_the_hash_is_sha256_hex_and_never_the_secret() -> None:
    _, presented = generate_key()
    assert presented.secret_hash == hash_secret(presented.secret)
    assert len(presented.secret_hash) == 64
    assert presented.secret not in presented.secret_hash


def test_a_stored_key_matches_only_its_own_secret() -> None:
    _, presented = generate_key()
    key = ApiKey(presented.key_id, "ci", Role.WRITE, presented.secret_hash, NOW)
    assert key.matches(presented)
    _, other = generate_key()
    assert not key.matches(type(presented)(presented.key_id, other.secret))
    assert "secret" not in str(key.to_json())
    assert presented.secret not in str(key.to_json())


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "Token", "token"])
def test_bearer_and_token_schemes_are_accepted(scheme: str) -> None:
    text, presented = generate_key()
    assert parse_authorization(f"{scheme} {text}".encode()) == presented


@pytest.mark.parametrize(
    "header", [None, b"", b"Bearer", b"Bearer ", b"Basic dXNlcjpwYXNz", b"Bearer not-a-key", "Bearer tsk_é".encode()]
)
def test_unusable_headers_give_no_key(header: bytes | None) -> None:
    assert parse_authorization(header) is None


def test_roles_are_ordered() -> None:
    assert Role.ADMIN.allows(Role.WRITE)
    assert Role.ADMIN.allows(Role.READ)
    assert Role.WRITE.allows(Role.READ)
    assert Role.WRITE.allows(Role.WRITE)
    assert not Role.WRITE.allows(Role.ADMIN)
    assert not Role.READ.allows(Role.WRITE)


def test_key_requests_are_validated() -> None:
    assert parse_key_request({"role": "write", "name": "ingest"}) == (Role.WRITE, "ingest")
    assert parse_key_request({"role": "read"}) == (Role.READ, "")
    for bad in ({}, {"role": "root"}, {"role": ["admin"]}, {"role": "read", "name": 5}, {"role": "read", "x": 1}, []):
        with pytest.raises(ValidationFailed):
            parse_key_request(bad)
