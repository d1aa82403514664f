"""Catalog updates in Redis: one hash of item_id -> JSON entry (``null`` = deleted), a revision
counter of the changes, and a channel that tells every API process the new revision.

Each process remembers the revision its serving model was built with, so a change is built
once per process: the writing route builds it, and its own notification is then skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from app.store.connect import AsyncClient, failures, is_cluster
from app.store.keys import Keys

Entries = dict[str, dict[str, Any] | None]


@dataclass(frozen=True)
class CatalogState:
    revision: int  # changes made so far (0: none)
    entries: Entries  # at least the changes up to ``revision``


# KEYS: catalog hash, revision counter. ARGV: item id, entry JSON, channel. Returns the revision.
_PUT = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local revision = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[3], revision)
return revision
"""


class CatalogStore:
    def __init__(self, client: AsyncClient, keys: Keys) -> None:
        self.client, self.keys = client, keys
        self._put = client.register_script(_PUT)

    async def put(self, item_id: str, entry: dict[str, Any] | None) -> int:
        """Store an entry (None deletes), count the change and notify every API process
        (atomically on one server). Returns the new revision."""
        keys, channel = self.keys, self.keys.catalog_channel()
        with failures("catalog not updated"):
            if is_cluster(self.client):  # two slots: no script; listeners also resync on reconnect
                await self.client.hset(keys.catalog(), item_id, json.dumps(entry))
                revision = int(await self.client.incr(keys.catalog_revision()))
                await self.client.publish(channel, str(revision))
                return revision
            found = await self._put(
                keys=[keys.catalog(), keys.catalog_revision()], args=[item_id, json.dumps(entry), channel]
            )
            return int(found)

    async def revision(self) -> int:
        with failures("catalog revision not read"):
            return int(await self.client.get(self.keys.catalog_revision()) or 0)

    async def read(self) -> CatalogState:
        """The revision, then the entries: read in this order, the entries hold at least every
        change the revision counts (a change made in between is built again when announced)."""
        revision = await self.revision()
        with failures("catalog not read"):
            raw: dict[str, str] = await self.client.hgetall(self.keys.catalog())  # type: ignore[assignment]
        return CatalogState(revision, {item_id: json.loads(value) for item_id, value in raw.items()})
