"""MongoLease: at most one holder of a named job across every worker and server instance, for a bounded time.

```
leases  {_id: name, holder: str, until: date}
```

A lease in MongoDB rather than a Redis lock: the work it guards (compaction, the retention sweep) is all in
MongoDB, so it runs exactly when MongoDB is reachable, whatever Redis is doing, and the one-shot CLI needs
no Redis. A holder that dies keeps the lease only until `until`.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from telemetry_server.storage.mongo import Document, unavailable_when_unreachable


class MongoLease:
    def __init__(self, database: AsyncDatabase[Document], name: str, duration: timedelta) -> None:
        self._leases = database["leases"]
        self._name = name
        self._duration = duration
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{ObjectId()}"

    async def acquire(self) -> bool:
        """Take the lease (or extend it, when held here); False while another holder has it."""
        now = datetime.now(UTC)
        async with unavailable_when_unreachable(f"{self._name} lease"):
            try:
                await self._leases.update_one(
                    {"_id": self._name, "$or": [{"until": {"$lt": now}}, {"holder": self.holder}]},
                    {"$set": {"holder": self.holder, "until": now + self._duration}},
                    upsert=True,
                )
            except DuplicateKeyError:  # held by another: the filter missed it and the upsert collided
                return False
        return True

    async def release(self) -> None:
        async with unavailable_when_unreachable(f"{self._name} lease"):
            await self._leases.delete_one({"_id": self._name, "holder": self.holder})
