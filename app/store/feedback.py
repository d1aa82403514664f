"""Feedback in Redis: an append-only stream for retraining, a capped per-user list for live
personalization, and idempotency on ``event_id``. One Lua call per shard (see
app.store.keys) makes the dedup checks and writes atomic; a batch is one pipelined round trip."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from app.events import ATTRIBUTED_FIELDS, STREAM_FIELDS
from app.store.attribution import COUNT_LUA
from app.store.connect import AsyncClient, failures, run_scripts
from app.store.keys import Keys

# FeedbackStore._values' order, checked once: a new stream field must be added there too.
assert STREAM_FIELDS == (
    "event_id", "user_id", "item_id", "event", "value", "timestamp", "received_at", "model_version",
    "recommendation_id", "position", "experiment_id", "variant", "list_version",
), "FeedbackStore._values lists the stream values in STREAM_FIELDS order"  # fmt: skip

_AT = {name: STREAM_FIELDS.index(name) + 1 for name in ("event", *ATTRIBUTED_FIELDS)}

# One call stores a shard's events. Arguments go as one JSON payload (redis-py packs each
# argument in Python: ~20 arguments per event would cost more than everything else), and
# each key once (KEYS: the stream, then every key an event names, by index). ARGV: ttl,
# recent cap, recent ttl, counters ttl, the running experiment (or ""), the stream field
# names (JSON), the events (JSON): per event [kind, group, recent entry (a list the script
# encodes), then the KEYS index
# of its seen marker, recent list, list record, user counts, group totals (0: none), then its
# stream values]. Kind 0: plain; 1: attributed (reads the list's record); 2: attributed in
# the running experiment (also counts, when the record says the list was served in it to
# this group). Returns one character per event: 1 stored, 0 a duplicate event id (one
# string: redis-py parses a reply of n integers line by line, in Python).
_APPEND = (
    COUNT_LUA
    + f"""
local ttl, cap, recent_ttl = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local exp_ttl, experiment = ARGV[4], ARGV[5]
local names, events = cjson.decode(ARGV[6]), cjson.decode(ARGV[7])
local f = #names
local out, lists, records = {{}}, {{}}, {{}}
for e = 1, #events do
  local ev = events[e]
  local kind, group = ev[1], ev[2]
  if redis.call('SET', KEYS[ev[4]], '1', 'NX', 'EX', ttl) then
    local fields = {{}}
    for j = 1, f do
      fields[2 * j - 1] = names[j]
      fields[2 * j] = ev[8 + j]
    end
    if kind > 0 then
      local rec = records[ev[6]]
      if not rec then
        rec = redis.call('HMGET', KEYS[ev[6]], 'experiment', 'group', 'model_version')
        records[ev[6]] = rec
      end
      if rec[1] then
        fields[2 * {_AT["experiment_id"]}] = rec[1]
        fields[2 * {_AT["variant"]}] = rec[2]
        fields[2 * {_AT["list_version"]}] = rec[3]
        local event = ev[8 + {_AT["event"]}]
        if kind == 2 and rec[1] == experiment and rec[2] == group and COUNTED[event] then
          count(KEYS[ev[7]], KEYS[ev[8]], event, 1)
        end
      end
    end
    redis.call('XADD', KEYS[1], '*', unpack(fields))
    redis.call('LPUSH', KEYS[ev[5]], cjson.encode(ev[3]))
    lists[ev[5]] = true
    out[e] = '1'
  else
    out[e] = '0'
  end
end
-- Once per list and per counter key, not per event.
for at in pairs(lists) do
  redis.call('LTRIM', KEYS[at], 0, cap - 1)
  redis.call('EXPIRE', KEYS[at], recent_ttl)
end
flush(exp_ttl)
return table.concat(out)
"""
)
_NAMES = json.dumps(STREAM_FIELDS)


class _Call:
    """One script call's keys (each once) and events."""

    def __init__(self, stream: str) -> None:
        self.keys = [stream]
        self.index: dict[str, int] = {}
        self.events: list[list[Any]] = []
        self.positions: list[int] = []

    def key(self, name: str) -> int:
        """The 1-based KEYS index of ``name``, added once."""
        at = self.index.get(name)
        if at is None:
            self.keys.append(name)
            at = self.index[name] = len(self.keys)
        return at


@dataclass(frozen=True)
class Attribution:
    """What the feedback of a batch is attributed to: the running experiment (if any) and
    the group each user is in. None of it is read from Redis on the way in."""

    experiment_id: str  # "" when no experiment is running
    group_of: Callable[[str], str]  # user id -> their variant (or "holdout")
    ttl_s: int  # of the experiment counters


class Feedback(Protocol):
    """One event to store (app.schemas.FeedbackEvent: read as attributes, no copy)."""

    @property
    def user_id(self) -> str: ...
    @property
    def item_id(self) -> str: ...
    @property
    def event(self) -> str: ...
    @property
    def value(self) -> float | None: ...
    @property
    def timestamp(self) -> float | None: ...
    @property
    def event_id(self) -> str | None: ...
    @property
    def recommendation_id(self) -> str | None: ...
    @property
    def position(self) -> int | None: ...


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
        self, events: Sequence[Feedback], *, model_version: str, attribution: Attribution | None = None
    ) -> list[tuple[str, bool]]:
        """Store events; returns (event_id, stored) per event, stored False for duplicates.
        With ``attribution``, an event naming a ``recommendation_id`` gets the list's
        experiment, variant and model version from its record, and counts in the experiment.

        Raises StoreUnavailable (or StoreFailed, an error answer): then nothing is acknowledged.
        """
        received = time.time()
        fresh = os.urandom(16 * len(events)).hex()  # 32 random hex digits per event, as a uuid4
        ids = [e.event_id or fresh[32 * p : 32 * p + 32] for p, e in enumerate(events)]
        keys = self.keys
        calls: dict[int, _Call] = {}
        for p, event in enumerate(events):
            user = event.user_id
            shard = keys.shard(user)
            call = calls.get(shard)
            if call is None:
                call = calls[shard] = _Call(keys.events_stream(shard))
            call.positions.append(p)
            call.keys.append(keys.seen_event(user, ids[p], shard=shard))  # unique: no lookup
            kind, group, at = 0, "", [len(call.keys), call.key(keys.recent(user, shard=shard)), 0, 0, 0]
            rid = event.recommendation_id
            if rid and attribution is not None:
                kind, at[2] = 1, call.key(keys.recommendation(user, rid, shard=shard))
                if attribution.experiment_id:
                    kind, group = 2, attribution.group_of(user)
                    exp = attribution.experiment_id
                    at[3] = call.key(keys.experiment_user(exp, user, shard=shard))
                    at[4] = call.key(keys.experiment_totals(exp, group, shard))
            recent, *values = self._values(event, ids[p], received, model_version)
            call.events.append([kind, group, recent, *at, *values])
        ttl = attribution.ttl_s if attribution is not None else 0
        experiment = attribution.experiment_id if attribution is not None else ""
        fixed: list[str | int] = [
            self.idempotency_ttl_s,
            self.recent_cap,
            self.recent_ttl_s,
            ttl,
            experiment,
            _NAMES,
        ]
        scripts = [(c.keys, [*fixed, json.dumps(c.events)]) for c in calls.values()]
        with failures("feedback not stored"):
            replies = await run_scripts(self.client, self._append, scripts)
        stored = [False] * len(events)
        for call, reply in zip(calls.values(), replies, strict=True):
            for p, flag in zip(call.positions, reply, strict=True):
                stored[p] = flag == "1"
        return list(zip(ids, stored, strict=True))

    @staticmethod
    def _values(event: Feedback, event_id: str, received: float, model_version: str) -> list[Any]:
        """The event's recent-list entry (the script encodes it), then its stream values in
        STREAM_FIELDS order (the attributed fields empty: the script fills them from the
        list's record). A list literal: this runs once per event of every batch."""
        timestamp = event.timestamp or received
        value, position, item = event.value, event.position, event.item_id
        return [
            [item, event.event, value, timestamp],
            event_id,
            event.user_id,
            item,
            event.event,
            "" if value is None else repr(float(value)),
            repr(float(timestamp)),
            repr(received),
            model_version,
            event.recommendation_id or "",
            "" if position is None else str(position),
            "",
            "",
            "",
        ]

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
