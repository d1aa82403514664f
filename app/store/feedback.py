"""Feedback in Redis: an append-only stream for retraining, a capped per-user list for live
personalization, and idempotency on ``event_id``. One Lua script per event makes the
dedup check and both writes atomic; a batch sends all its scripts in one round trip."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.errors import StoreUnavailable
from app.store.keys import Keys

# KEYS: seen marker, stream, recent list. ARGV: ttl, recent cap, recent ttl, recent entry,
# then stream field/value pairs. Returns 1 when stored, 0 for a duplicate event id.
_APPEND = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) == false then return 0 end
local fields = {}
for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('XADD', KEYS[2], '*', unpack(fields))
redis.call('LPUSH', KEYS[3], ARGV[4])
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[2]) - 1)
redis.call('EXPIRE', KEYS[3], ARGV[3])
return 1
"""

UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, OSError)


@dataclass(frozen=True)
class RecentEvent:
    item_id: str
    event: str
    value: float | None
    timestamp: float


class FeedbackStore:
    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        *,
        recent_cap: int,
        recent_ttl_s: int,
        idempotency_ttl_s: int,
    ) -> None:
        self.client, self.keys = client, keys
        self.recent_cap, self.recent_ttl_s = recent_cap, recent_ttl_s
        self.idempotency_ttl_s = idempotency_ttl_s
        self._append = client.register_script(_APPEND)

    async def ping(self) -> None:
        try:
            await self.client.ping()
        except (*UNAVAILABLE, RedisError) as exc:
            raise StoreUnavailable(f"redis is not answering: {exc}") from exc

    async def append(self, events: list[dict[str, Any]], *, model_version: str) -> list[tuple[str, bool]]:
        """Store events; returns (event_id, stored) per event, stored False for duplicates.

        Raises StoreUnavailable when Redis does not answer: then nothing is acknowledged.
        """
        received = time.time()
        ids = [e.get("event_id") or uuid.uuid4().hex for e in events]
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for event, event_id in zip(events, ids, strict=True):
                    await self._append(
                        keys=[
                            self.keys.seen_event(event["user_id"], event_id),
                            self.keys.events_stream(),
                            self.keys.recent(event["user_id"]),
                        ],
                        args=self._args(event, event_id, received, model_version),
                        client=pipe,
                    )
                results = await pipe.execute()
        except UNAVAILABLE as exc:
            raise StoreUnavailable(f"feedback not stored, redis is not answering: {exc}") from exc
        return [(event_id, bool(r)) for event_id, r in zip(ids, results, strict=True)]

    def _args(self, event: dict[str, Any], event_id: str, received: float, model_version: str) -> list[Any]:
        timestamp = event.get("timestamp") or received
        value = event.get("value")
        recent = json.dumps([event["item_id"], event["event"], value, timestamp])
        fields = {
            "event_id": event_id,
            "user_id": event["user_id"],
            "item_id": event["item_id"],
            "event": event["event"],
            "value": "" if value is None else repr(float(value)),
            "timestamp": repr(float(timestamp)),
            "received_at": repr(received),
            "model_version": model_version,
        }
        flat = [x for pair in fields.items() for x in pair]
        return [self.idempotency_ttl_s, self.recent_cap, self.recent_ttl_s, recent, *flat]

    async def recent(self, user_id: str) -> list[RecentEvent]:
        """The user's latest events, newest first. Raises StoreUnavailable."""
        try:
            raw = await self.client.lrange(self.keys.recent(user_id), 0, self.recent_cap - 1)
        except UNAVAILABLE as exc:
            raise StoreUnavailable(f"redis is not answering: {exc}") from exc
        out = []
        for entry in raw:
            item_id, event, value, timestamp = json.loads(entry)
            out.append(RecentEvent(item_id, event, value, timestamp))
        return out
