"""MONGO_READ_PREFERENCE: where listings read on a replica set."""

from __future__ import annotations

import pytest
from pymongo import AsyncMongoClient

from telemetry_server.config import ReadPreference, load_settings
from telemetry_server.errors import ConfigurationError
from telemetry_server.storage.mongo_buckets import MongoBucketStore


def test_listings_read_from_the_primary_unless_told() -> None:
    assert load_settings({}).mongo_read_preference is ReadPreference.PRIMARY
    told = load_settings({"MONGO_READ_PREFERENCE": "secondaryPreferred"})
    assert told.mongo_read_preference is ReadPreference.SECONDARY_PREFERRED
    with pytest.raises(ConfigurationError, match="MONGO_READ_PREFERENCE"):
        load_settings({"MONGO_READ_PREFERENCE": "fastest"})


@pytest.mark.parametrize("preference", list(ReadPreference))
def test_each_preference_is_one_pymongo_has(preference: ReadPreference) -> None:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(connect=False)
    store = MongoBucketStore(client, "db", 10, listing_read_preference=preference)
    assert store._listed.read_preference.mongos_mode.lower() == preference.value
    assert store._buckets.read_preference.mongos_mode == "primary"  # every other read: where the writes are
