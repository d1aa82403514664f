"""Catalog updates in Redis: one hash of item_id -> JSON entry (``null`` = deleted), and a
channel that tells every API process to apply them."""

from __future__ import annotations

import json
from typing import Any

from app.store.connect import AsyncClient, failures, is_cluster
from app.store.keys import Keys


class CatalogStore:
    def __init__(self, client: AsyncClient, keys: Keys) -> None:
        self.client, self.keys = client, keys

    async def put(self, item_id: str, entry: dict[str, Any] | None) -> None:
        """Store an entry (None deletes) and notify every API process (atomically on one server)."""
        with failures("catalog not updated"):
            if is_cluster(self.client):  # no MULTI across a cluster; listeners also resync on reconnect
                await self.client.hset(self.keys.catalog(), item_id, json.dumps(entry))
                await self.client.publish(self.keys.catalog_channel(), item_id)
                return
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.hset(self.keys.catalog(), item_id, json.dumps(entry))
                pipe.publish(self.keys.catalog_channel(), item_id)
                await pipe.execute()

    async def all(self) -> dict[str, dict[str, Any] | None]:
        with failures("catalog not read"):
            raw: dict[str, str] = await self.client.hgetall(self.keys.catalog())  # type: ignore[assignment]
        return {item_id: json.loads(value) for item_id, value in raw.items()}
