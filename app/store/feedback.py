"""Feedback in Redis: an append-only stream for retraining, a capped per-user list for live
personalization, and idempotency on ``event_id``. One Lua call per shard (see
app.store.keys) makes the dedup checks and writes atomic; a batch is one pipelined round trip."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from app.events import STREAM_FIELDS
from app.store.connect import AsyncClient, failures, is_cluster
from app.store.keys import Keys

# One call stores a whole batch. KEYS: per event (seen marker, recent list), then the
# stream last. ARGV: ttl, recent cap, recent ttl, field count F, then per event its recent
# entry and F stream values (field names come after all events). Returns 1 per stored
# event, 0 per duplicate event id.
_APPEND = """
local ttl, cap, recent_ttl, f = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local n = (#KEYS - 1) / 2
local names_at = 5 + n * (f + 1)
local stream = KEYS[#KEYS]
local out = {}
for e = 0, n - 1 do
  local base = 5 + e * (f + 1)
  if redis.call('SET', KEYS[2 * e + 1], '1', 'NX', 'EX', ttl) then
    local fields = {}
    for j = 1, f do
      fields[#fields + 1] = ARGV[names_at + j - 1]
      fields[#fields + 1] = ARGV[base + j]
    end
    redis.call('XADD', stream, '*', unpack(fields))
    redis.call('LPUSH', KEYS[2 * e + 2], ARGV[base])
    redis.call('LTRIM', KEYS[2 * e + 2], 0, cap - 1)
    redis.call('EXPIRE', KEYS[2 * e + 2], recent_ttl)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
"""


@dataclass(frozen=True)
class RecentEvent:
    item_id: str
    event: str
    value: float | None
    timestamp: float


class FeedbackStore:
    def __init__(
        self,
        client: AsyncClient,
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
        with failures("ping"):
            await self.client.ping()

    async def append(self, events: list[dict[str, Any]], *, model_version: str) -> list[tuple[str, bool]]:
        """Store events; returns (event_id, stored) per event, stored False for duplicates.

        Raises StoreUnavailable (or StoreFailed, an error answer): then nothing is acknowledged.
        """
        received = time.time()
        ids = [e.get("event_id") or uuid.uuid4().hex for e in events]
        by_shard: dict[int, list[int]] = {}
        for position, event in enumerate(events):
            by_shard.setdefault(self.keys.shard(event["user_id"]), []).append(position)
        calls = []
        for shard, positions in by_shard.items():
            keys: list[str] = []
            values: list[Any] = []
            for p in positions:
                user = events[p]["user_id"]
                keys += [self.keys.seen_event(user, ids[p]), self.keys.recent(user)]
                values += self._values(events[p], ids[p], received, model_version)
            keys.append(self.keys.events_stream(shard))
            fixed = [self.idempotency_ttl_s, self.recent_cap, self.recent_ttl_s, len(STREAM_FIELDS)]
            calls.append((keys, [*fixed, *values, *STREAM_FIELDS]))
        with failures("feedback not stored"):
            if is_cluster(self.client):
                # Each call writes one slot; a cluster cannot pipeline scripts, so run them at once.
                replies = await asyncio.gather(*(self._append(keys=k, args=a) for k, a in calls))
            else:
                async with self.client.pipeline(transaction=False) as pipe:
                    for k, a in calls:
                        await self._append(keys=k, args=a, client=pipe)  # type: ignore[arg-type]
                    replies = await pipe.execute()
        stored = [False] * len(events)
        for positions, reply in zip(by_shard.values(), replies, strict=True):
            for p, flag in zip(positions, reply, strict=True):
                stored[p] = bool(flag)
        return list(zip(ids, stored, strict=True))

    @staticmethod
    def _values(event: dict[str, Any], event_id: str, received: float, model_version: str) -> list[Any]:
        """The event's recent-list entry, then its stream values in STREAM_FIELDS order."""
        timestamp = event.get("timestamp") or received
        value = event.get("value")
        recent = json.dumps([event["item_id"], event["event"], value, timestamp])
        record = {
            "event_id": event_id,
            "user_id": event["user_id"],
            "item_id": event["item_id"],
            "event": event["event"],
            "value": "" if value is None else repr(float(value)),
            "timestamp": repr(float(timestamp)),
            "received_at": repr(received),
            "model_version": model_version,
        }
        return [recent, *(record[name] for name in STREAM_FIELDS)]

    async def read_events(
        self, after: dict[str, str] | None = None, *, chunk: int = 10_000
    ) -> tuple[list[dict[str, str]], dict[str, str]]:
        """Every stream event after the cursor {stream key: last id read}.

        Returns (events with their ``stream``/``stream_id``, the cursor after them).
        """
        after = dict(after or {})
        events: list[dict[str, str]] = []
        with failures("feedback not read"):
            for stream in self.keys.all_streams():
                start = f"({after[stream]}" if stream in after else "-"
                while True:
                    entries: Any = await self.client.xrange(stream, min=start, max="+", count=chunk)
                    for entry_id, fields in entries:
                        events.append({**fields, "stream": stream, "stream_id": entry_id})
                        after[stream] = entry_id
                    if len(entries) < chunk:
                        break
                    start = f"({after[stream]}"
        return events, after

    async def recent(self, user_id: str) -> list[RecentEvent]:
        """The user's latest events, newest first. Raises StoreUnavailable (or StoreFailed)."""
        with failures("live events not read"):
            raw = await self.client.lrange(self.keys.recent(user_id), 0, self.recent_cap - 1)
        out = []
        for entry in raw:
            item_id, event, value, timestamp = json.loads(entry)
            out.append(RecentEvent(item_id, event, value, timestamp))
        return out
