"""Every Redis key name is built here.

Keys carry a prefix with a schema version (``shoprec:v1``) and a shard hash tag
(``{s007}``): a user's keys and the event stream they append to share one tag, so one Lua
call can write them atomically on a single server and on a Redis Cluster alike. Events are
spread over ``shards`` streams by a stable hash of the user id.
"""

from __future__ import annotations

import zlib


class Keys:
    def __init__(self, prefix: str, shards: int = 16) -> None:
        self.prefix, self.shards = prefix, shards

    def shard(self, user_id: str) -> int:
        return zlib.crc32(user_id.encode()) % self.shards

    def _tagged(self, shard: int) -> str:
        return f"{self.prefix}:{{s{shard:03d}}}"

    def events_stream(self, shard: int) -> str:
        """Append-only record of accepted events of one shard (the retraining input)."""
        return f"{self._tagged(shard)}:events"

    def all_streams(self) -> list[str]:
        return [self.events_stream(s) for s in range(self.shards)]

    def recent(self, user_id: str) -> str:
        """Bounded list of the user's latest events (live personalization)."""
        return f"{self._tagged(self.shard(user_id))}:recent:{user_id}"

    def seen_event(self, user_id: str, event_id: str) -> str:
        """Idempotency marker of one event id of one user (expires)."""
        return f"{self._tagged(self.shard(user_id))}:seen:{user_id}:{event_id}"

    def catalog(self) -> str:
        """Hash of catalog changes since training: item_id -> JSON entry or null."""
        return f"{self.prefix}:catalog"

    def catalog_revision(self) -> str:
        """Counter of catalog changes: a process knows which changes its model holds."""
        return f"{self.prefix}:catalog-revision"

    def exposure_counts(self) -> str:
        """Hash of item_id -> times shown in an exploration slot."""
        return f"{self.prefix}:{{exposure}}:counts"

    def exposure_saturated(self) -> str:
        """Set of the items shown the exposure cap's number of times (no longer explored)."""
        return f"{self.prefix}:{{exposure}}:saturated"

    def catalog_channel(self) -> str:
        return f"{self.prefix}:catalog-changes"

    def models_channel(self) -> str:
        return f"{self.prefix}:models"
