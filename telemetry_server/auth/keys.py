"""API keys as pure data: the key format, its hash, roles, and reading the `Authorization` header."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from telemetry_server.errors import FieldError, ValidationFailed
from telemetry_server.models.timestamps import format_timestamp

KEY_PREFIX = "tsk"
_ID_BYTES = 8  # public: names the key in listings, logs and `keys revoke`
_SECRET_BYTES = 32  # 256 random bits; 128 already put guessing out of reach, even of a fast hash (SHA-256)
_KEY = re.compile(r"^tsk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
_SCHEMES = (b"bearer", b"token")  # Token is what InfluxDB clients send
_BASIC = b"basic"  # InfluxDB v1 clients: the key is the password, the user name is ignored
MAX_KEY_NAME_LENGTH = 100


class Role(StrEnum):
    """Each role may do everything the ones before it may."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def allows(self, required: Role) -> bool:
        return self.rank >= required.rank


_RANKS = {Role.READ: 0, Role.WRITE: 1, Role.ADMIN: 2}


@dataclass(frozen=True, slots=True)
class PresentedKey:
    """A key as a client sent it, split into its public id and its secret."""

    key_id: str
    secret: str

    @property
    def secret_hash(self) -> str:
        return hash_secret(self.secret)


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key: everything but the secret, of which only the hash is kept."""

    key_id: str
    name: str
    role: Role
    secret_hash: str
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def matches(self, presented: PresentedKey) -> bool:
        """Constant time, so the time taken tells nothing about how much of a guessed secret was right."""
        return hmac.compare_digest(self.secret_hash, presented.secret_hash)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.key_id,
            "name": self.name,
            "role": self.role.value,
            "created_at": format_timestamp(self.created_at),
            "revoked_at": format_timestamp(self.revoked_at) if self.revoked_at else None,
        }


def hash_secret(secret: str) -> str:
    # A fast hash is right here: the secrets are 256 random bits, so no guess list and no amount of hashing
    # speed makes a leaked hash reversible. Slow hashes (bcrypt, argon2) protect low-entropy human
    # passwords, and would only cost CPU on every request.
    return hashlib.sha256(secret.encode()).hexdigest()


def generate_key() -> tuple[str, PresentedKey]:
    """A new random key, as the text shown once to its owner and as parsed parts."""
    key_id = secrets.token_hex(_ID_BYTES)
    secret = base64.urlsafe_b64encode(secrets.token_bytes(_SECRET_BYTES)).decode().rstrip("=")
    text = f"{KEY_PREFIX}_{key_id}_{secret}"
    return text, PresentedKey(key_id, secret)


def parse_key(text: str) -> PresentedKey | None:
    """The parts of a well-formed key, or None."""
    match = _KEY.match(text)
    return None if match is None else PresentedKey(match.group(1), match.group(2))


def parse_authorization(header: bytes | None) -> PresentedKey | None:
    """The key in `Bearer <key>`, `Token <key>` or `Basic base64(<any user>:<key>)` (scheme in any case), or None
    when there is none usable."""
    if header is None:
        return None
    scheme, _, credentials = header.strip().partition(b" ")
    scheme = scheme.lower()
    try:
        if scheme == _BASIC:
            _, _, password = base64.b64decode(credentials.strip(), validate=True).partition(b":")
            return parse_key(password.decode("ascii"))
        if scheme in _SCHEMES:
            return parse_key(credentials.strip().decode("ascii"))
    except (UnicodeDecodeError, ValueError):  # binascii.Error is a ValueError
        return None
    return None


def parse_key_request(data: object) -> tuple[Role, str]:
    """`{"role": "read" | "write" | "admin", "name": "..."}`; the name is optional."""
    errors: list[FieldError] = []
    if not isinstance(data, dict):
        raise ValidationFailed([FieldError("$", 'must be an object such as {"role": "write", "name": "ingest"}')])
    for field in data:
        if field not in ("role", "name"):
            errors.append(FieldError(str(field)[:64], "is not a known field (allowed: role, name)"))
    role = Role.READ
    raw_role = data.get("role")
    if isinstance(raw_role, str) and raw_role in _RANKS:
        role = Role(raw_role)
    else:
        errors.append(FieldError("role", "must be one of read, write, admin"))
    name = data.get("name", "")
    if not isinstance(name, str) or len(name) > MAX_KEY_NAME_LENGTH or not name.isprintable():
        errors.append(FieldError("name", f"must be printable text of at most {MAX_KEY_NAME_LENGTH} characters"))
        name = ""
    if errors:
        raise ValidationFailed(errors)
    return role, name
