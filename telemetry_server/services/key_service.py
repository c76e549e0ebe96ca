"""ApiKeyService: create, list and revoke API keys, for the CLI and for `/admin/keys` alike."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from telemetry_server.auth.keys import ApiKey, Role, generate_key
from telemetry_server.errors import NotFound, StorageUnavailable, excerpt
from telemetry_server.models.timestamps import truncate_to_millis, utc_now
from telemetry_server.ports import KeyStore


class KeyRevocations(Protocol):
    """Tells every worker at once that a key was revoked (Redis pub/sub), so none serves it from memory."""

    async def publish(self, key_id: str) -> None: ...
    async def listen(self, on_revoked: Callable[[str], None]) -> None: ...


class ApiKeyService:
    def __init__(
        self, keys: KeyStore, clock: Callable[[], datetime] = utc_now, revocations: KeyRevocations | None = None
    ) -> None:
        self._keys = keys
        self._clock = clock
        self._revocations = revocations

    async def create(self, role: Role, name: str = "") -> tuple[ApiKey, str]:
        """The stored key, and its text: the only time the secret exists outside the client."""
        while True:
            text, presented = generate_key()
            key = ApiKey(presented.key_id, name, role, presented.secret_hash, self._now())
            if await self._keys.add_if_absent(key):  # 64-bit ids: a clash is all but impossible, not quite
                return key, text

    async def list_keys(self) -> list[ApiKey]:
        return await self._keys.all_keys()

    async def revoke(self, key_id: str) -> ApiKey:
        key = await self._keys.revoke(key_id, self._now())
        if key is None:
            raise NotFound(f"no API key with id {excerpt(key_id)}")
        if self._revocations is not None:
            # Stored is what counts: without Redis every worker still reads it within KEY_CACHE_SECONDS.
            with contextlib.suppress(StorageUnavailable):
                await self._revocations.publish(key_id)
        return key

    def _now(self) -> datetime:
        # Stored to the millisecond (a BSON date), so the key returned equals the key read back later.
        return truncate_to_millis(self._clock())
