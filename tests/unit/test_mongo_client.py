"""The MongoDB client's options: what every write waits for before the server answers 201."""

from __future__ import annotations

import asyncio

from telemetry_server.config import load_settings
from telemetry_server.storage.mongo import create_mongo_client


def write_concern_of(environ: dict[str, str]) -> dict[str, object]:
    async def build() -> dict[str, object]:
        client = create_mongo_client(load_settings(environ))  # lazy: nothing is connected
        try:
            return dict(client["db"]["metrics"].write_concern.document)
        finally:
            await client.close()

    return asyncio.run(build())


def test_writes_wait_for_a_journaled_majority_by_default() -> None:
    assert write_concern_of({"MONGO_URI": "mongodb://db:27017"}) == {"w": "majority", "j": True}


def test_the_settings_win_over_the_uri() -> None:
    uri = "mongodb://db:27017/?w=1&journal=false"

    assert write_concern_of({"MONGO_URI": uri}) == {"w": "majority", "j": True}


def test_the_write_concern_is_configurable() -> None:
    environ = {"MONGO_URI": "mongodb://db:27017", "MONGO_WRITE_CONCERN": "2", "MONGO_JOURNAL": "false"}

    assert write_concern_of(environ) == {"w": 2, "j": False}
