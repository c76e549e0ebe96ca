"""MongoKeyStore: API keys in the `api_keys` collection, by id, holding only the hash of each secret."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.errors import DuplicateKeyError

from telemetry_server.auth.keys import ApiKey, Role
from telemetry_server.storage.mongo import Document, unavailable_when_unreachable

COLLECTION = "api_keys"


def to_document(key: ApiKey) -> Document:
    return {
        "_id": key.key_id,
        "name": key.name,
        "role": key.role.value,
        "secret_sha256": key.secret_hash,
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
    }


def to_key(doc: dict[str, Any]) -> ApiKey:
    return ApiKey(
        doc["_id"], doc["name"], Role(doc["role"]), doc["secret_sha256"], doc["created_at"], doc["revoked_at"]
    )


class MongoKeyStore:
    """Shares the worker's MongoDB client with the metric store, which closes it."""

    def __init__(self, client: AsyncMongoClient[Document], database: str) -> None:
        self._keys = client[database][COLLECTION]

    async def add_if_absent(self, key: ApiKey) -> bool:
        async with unavailable_when_unreachable("storing a key"):
            try:
                await self._keys.insert_one(to_document(key))
            except DuplicateKeyError:
                return False
        return True

    async def get(self, key_id: str) -> ApiKey | None:
        async with unavailable_when_unreachable("reading a key"):
            doc = await self._keys.find_one({"_id": key_id})
        return None if doc is None else to_key(doc)

    async def all_keys(self) -> list[ApiKey]:
        async with unavailable_when_unreachable("listing keys"):
            return [to_key(doc) async for doc in self._keys.find({}).sort("created_at", 1)]

    async def revoke(self, key_id: str, at: datetime) -> ApiKey | None:
        """Revoke once: a second revoke keeps the first time."""
        async with unavailable_when_unreachable("revoking a key"):
            await self._keys.update_one({"_id": key_id, "revoked_at": None}, {"$set": {"revoked_at": at}})
            doc = await self._keys.find_one({"_id": key_id})
        return None if doc is None else to_key(doc)
