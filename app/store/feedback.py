"""Feedback in Redis: an append-only stream for retraining, a capped per-user list for live
personalization, and idempotency on ``event_id``. One Lua call per shard (see
app.store.keys) makes the dedup checks and writes atomic; a batch is one pipelined round trip."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.events import ATTRIBUTED_FIELDS, STREAM_FIELDS
from app.store.attribution import COUNT_LUA
from app.store.connect import AsyncClient, failures, is_cluster
from app.store.keys import Keys

_AT = {name: STREAM_FIELDS.index(name) + 1 for name in ("event", *ATTRIBUTED_FIELDS)}

# One call stores a whole batch. KEYS: the stream, then per event its seen marker and recent
# list and, by its kind, the list's record (kind 1: attributed) and the user's experiment
# counts and their totals (kind 2: attributed inside the running experiment). ARGV: ttl,
# recent cap, recent ttl, field count F, counters ttl, the running experiment (or ""), the F
# field names, then per event: kind, the user's group in the experiment, its recent entry
# and F stream values. Returns 1 per stored event, 0 per duplicate event id.
_APPEND = (
    COUNT_LUA
    + f"""
local ttl, cap, recent_ttl, f = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local exp_ttl, experiment = ARGV[5], ARGV[6]
local stream = KEYS[1]
local out = {{}}
local k, a = 2, 7 + f
while a <= #ARGV do
  local kind = tonumber(ARGV[a])
  local group, entry, base = ARGV[a + 1], ARGV[a + 2], a + 3
  if redis.call('SET', KEYS[k], '1', 'NX', 'EX', ttl) then
    local fields = {{}}
    for j = 1, f do
      fields[#fields + 1] = ARGV[6 + j]
      fields[#fields + 1] = ARGV[base + j - 1]
    end
    if kind > 0 then
      local rec = redis.call('HMGET', KEYS[k + 2], 'experiment', 'group', 'model_version')
      if rec[1] then
        fields[2 * {_AT["experiment_id"]}] = rec[1]
        fields[2 * {_AT["variant"]}] = rec[2]
        fields[2 * {_AT["list_version"]}] = rec[3]
        local event = ARGV[base + {_AT["event"]} - 1]
        if kind == 2 and rec[1] == experiment and rec[2] == group and COUNTED[event] then
          count(KEYS[k + 3], KEYS[k + 4], event, 1, exp_ttl)
        end
      end
    end
    redis.call('XADD', stream, '*', unpack(fields))
    redis.call('LPUSH', KEYS[k + 1], entry)
    redis.call('LTRIM', KEYS[k + 1], 0, cap - 1)
    redis.call('EXPIRE', KEYS[k + 1], recent_ttl)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
  k = k + ({{2, 3, 5}})[kind + 1]
  a = base + f
end
return out
"""
)


@dataclass(frozen=True)
class Attribution:
    """What the feedback of a batch is attributed to: the running experiment (if any) and
    the group each user is in. None of it is read from Redis on the way in."""

    experiment_id: str  # "" when no experiment is running
    group_of: Callable[[str], str]  # user id -> their variant (or "holdout")
    ttl_s: int  # of the experiment counters


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

    async def append(
        self, events: list[dict[str, Any]], *, model_version: str, attribution: Attribution | None = None
    ) -> list[tuple[str, bool]]:
        """Store events; returns (event_id, stored) per event, stored False for duplicates.
        With ``attribution``, an event naming a ``recommendation_id`` gets the list's
        experiment, variant and model version from its record, and counts in the experiment.

        Raises StoreUnavailable (or StoreFailed, an error answer): then nothing is acknowledged.
        """
        received = time.time()
        ids = [e.get("event_id") or uuid.uuid4().hex for e in events]
        keys = self.keys
        by_shard: dict[int, tuple[list[int], list[str], list[Any]]] = {}
        for p, event in enumerate(events):
            user = event["user_id"]
            shard = keys.shard(user)
            if shard not in by_shard:
                by_shard[shard] = ([], [keys.events_stream(shard)], [])
            positions, call_keys, values = by_shard[shard]
            positions.append(p)
            call_keys += [keys.seen_event(user, ids[p]), keys.recent(user)]
            kind, group = 0, ""
            rid = event.get("recommendation_id")
            if rid and attribution is not None:
                kind = 1
                call_keys.append(keys.recommendation(user, rid))
                if attribution.experiment_id:
                    kind, group = 2, attribution.group_of(user)
                    exp = attribution.experiment_id
                    call_keys += [keys.experiment_user(exp, user), keys.experiment_totals(exp, group, shard)]
            values += [kind, group, *self._values(event, ids[p], received, model_version)]
        ttl = attribution.ttl_s if attribution is not None else 0
        experiment = attribution.experiment_id if attribution is not None else ""
        fixed = [
            self.idempotency_ttl_s,
            self.recent_cap,
            self.recent_ttl_s,
            len(STREAM_FIELDS),
            ttl,
            experiment,
        ]
        calls = [(k, [*fixed, *STREAM_FIELDS, *v]) for _, k, v in by_shard.values()]
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
        for (positions, _, _), reply in zip(by_shard.values(), replies, strict=True):
            for p, flag in zip(positions, reply, strict=True):
                stored[p] = bool(flag)
        return list(zip(ids, stored, strict=True))

    @staticmethod
    def _values(event: dict[str, Any], event_id: str, received: float, model_version: str) -> list[Any]:
        """The event's recent-list entry, then its stream values in STREAM_FIELDS order
        (the attributed fields empty: the script fills them from the list's record)."""
        timestamp = event.get("timestamp") or received
        value = event.get("value")
        position = event.get("position")
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
            "recommendation_id": event.get("recommendation_id") or "",
            "position": "" if position is None else str(position),
            "experiment_id": "",
            "variant": "",
            "list_version": "",
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
