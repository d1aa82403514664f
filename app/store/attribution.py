"""Attribution in Redis: the record of each served recommendation list, implicit impressions,
and an experiment's counters, updated in O(1) per event inside the Lua call that stores it.

Counters (keys in app.store.keys): per user and experiment a hash of the user's impressions
and outcomes (x, y...); per variant and shard a hash of sums over its users: ``users``,
``impression`` (sum x), ``impression:sq`` (sum x^2) and per outcome o: ``o`` (sum y),
``o:sq`` (sum y^2), ``o:x`` (sum xy). When a user's count goes from c to c + a, sum x^2 grows
by 2ca + a^2 and sum xy by a times the other count: no scan, ever (in a batch, the
increments are summed in the script and written once per user and group). A user's counts and the
sums they feed carry the user's shard hash tag, so one script writes them on one slot of a
Redis Cluster; results add the shards up (app.experiments.results reads the sums).

Records are written behind the answer: ``record`` queues one and returns, and a writer task
sends what is queued in pipelines of up to ``CHUNK`` records (on a cluster, up to ``CHUNK``
script calls at once). The answer does not wait for Redis, and answers that finish while a
write is in flight share the next one (Beauty, one core: lists answered for a session id
reached 0.82 of the max throughput of lists without one while each waited for its record,
0.96 behind the answer; docs/benchmarks.md). ``flush`` waits for the records queued before
it: the feedback and results routes call it, so an API process attributes what it has
answered itself; another process sees a record once the write lands (a round trip after the
answer, more under load). A Redis outage loses records, never an answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from app.errors import StoreUnavailable
from app.events import EXPOSURE, OUTCOMES, STREAM_FIELDS
from app.store.connect import AsyncClient, failures, run_scripts
from app.store.keys import Keys

_OUTCOMES_LUA = ", ".join(f"'{o}'" for o in OUTCOMES)

# count(user key, totals key, field, amount): the O(1) update described above. Within one
# call a user's counts are read once and every increment is summed in Lua tables, then
# flush(ttl) writes each user's and each group's changed fields once (HINCRBY) and sets
# their TTL: a batch costs one HMGET per user and a few HINCRBY per group, not ~8 per event.
COUNT_LUA = f"""
local EXPOSURE, OUTCOMES = '{EXPOSURE}', {{{_OUTCOMES_LUA}}}
local COUNTED = {{['{EXPOSURE}'] = 1, {", ".join(f"['{o}'] = {n + 2}" for n, o in enumerate(OUTCOMES))}}}
local users, sums = {{}}, {{}}
local function bump(tkey, field, amount)
  local t = sums[tkey]
  if not t then t = {{}}; sums[tkey] = t end
  t[field] = (t[field] or 0) + amount
end
local function count(ukey, tkey, field, amount)
  local u = users[ukey]
  if not u then
    local old = redis.call('HMGET', ukey, EXPOSURE, unpack(OUTCOMES))
    u = {{c = {{}}, add = {{}}}}
    local fresh = true
    for i = 1, #old do
      if old[i] then fresh = false end
      u.c[i] = tonumber(old[i] or '0')
    end
    if fresh then bump(tkey, 'users', 1) end
    users[ukey] = u
  end
  local at = COUNTED[field]
  local mine = u.c[at]
  u.c[at] = mine + amount
  u.add[field] = (u.add[field] or 0) + amount
  bump(tkey, field, amount)
  bump(tkey, field .. ':sq', 2 * mine * amount + amount * amount)
  if at == 1 then
    for i, o in ipairs(OUTCOMES) do
      if u.c[i + 1] > 0 then bump(tkey, o .. ':x', amount * u.c[i + 1]) end
    end
  elseif u.c[1] > 0 then
    bump(tkey, field .. ':x', amount * u.c[1])
  end
end
local function flush(ttl)
  for key, u in pairs(users) do
    for field, amount in pairs(u.add) do redis.call('HINCRBY', key, field, amount) end
    redis.call('EXPIRE', key, ttl)
  end
  for key, t in pairs(sums) do
    for field, amount in pairs(t) do redis.call('HINCRBY', key, field, amount) end
    redis.call('EXPIRE', key, ttl)
  end
end
"""

# KEYS: the list's record, the unit's stream, then (when counting) the unit's counts and
# its group's totals. ARGV: record ttl, counters ttl, count (0/1), the record's 4 values,
# then the stream field names and the impressions' values (JSON: one argument each, as in
# app.store.feedback, since redis-py packs every argument in Python). The
# record is what feedback needs to be attributed, no more (110-250 bytes of Redis memory
# a list): the items are in the feedback (item_id, position) and the implicit impressions.
_SERVE = (
    COUNT_LUA
    + """
local rec_ttl, exp_ttl, counting = ARGV[1], ARGV[2], ARGV[3]
redis.call('HSET', KEYS[1], 'experiment', ARGV[4], 'group', ARGV[5], 'model_version', ARGV[6],
  'strategy', ARGV[7])
redis.call('EXPIRE', KEYS[1], rec_ttl)
local names, shown = cjson.decode(ARGV[8]), cjson.decode(ARGV[9])
local n = #shown
for e = 1, n do
  local fields = {}
  for j = 1, #names do
    fields[2 * j - 1] = names[j]
    fields[2 * j] = shown[e][j]
  end
  redis.call('XADD', KEYS[2], '*', unpack(fields))
end
if counting == '1' and n > 0 then count(KEYS[3], KEYS[4], EXPOSURE, n) end
flush(exp_ttl)
return n
"""
)


_NAMES = json.dumps(STREAM_FIELDS)
# Records waiting for Redis beyond this are dropped, oldest first (a Redis that stops
# answering holds each write for its timeout while answers go on).
MAX_QUEUED = 10_000
# Records per write: a pipeline's size, and on a cluster the script calls in flight at once
# (its pool holds 100 connections per node).
CHUNK = 32
WHERE = "attribution record of a recommendation"

log = logging.getLogger("shoprec.attribution")


@dataclass(frozen=True)
class Served:
    """One answered recommendation request, as attribution records it."""

    recommendation_id: str
    unit: str  # the user id, or the anonymous visitor's session id
    experiment_id: str  # "" outside any experiment
    group: str  # the variant's name, "holdout", or ""
    model_version: str
    strategy: str
    item_ids: Sequence[str]


class AttributionStore:
    def __init__(
        self,
        client: AsyncClient,
        keys: Keys,
        *,
        record_ttl_s: int,
        experiment_ttl_s: int,
        implicit: bool,
        on_error: Callable[[StoreUnavailable, str], None] = lambda exc, where: None,
        max_queued: int = MAX_QUEUED,
    ) -> None:
        self.client, self.keys = client, keys
        self.record_ttl_s, self.experiment_ttl_s = record_ttl_s, experiment_ttl_s
        self.implicit, self.on_error, self.max_queued = implicit, on_error, max_queued
        self._serve = client.register_script(_SERVE)
        self._queue: list[tuple[list[str], list[Any]]] = []  # (keys, args) of each script call
        self._queued = self._done = 0  # records queued and written (or lost) since the start
        self.writes = 0  # round trips (calls on a cluster) that wrote them
        self._writer: asyncio.Task[None] | None = None
        self._wrote = asyncio.Event()  # set (and replaced) after each write

    def record(self, served: Served) -> None:
        """Queue the list's record (with implicit impressions, one impression event per item,
        stream only, and the unit's exposure counters: one script call) for the writer."""
        self._queue.append(self._call(served))
        self._queued += 1
        if len(self._queue) > self.max_queued:
            lost = len(self._queue) - self.max_queued
            del self._queue[:lost]
            self._done += lost
            self.on_error(
                StoreUnavailable(f"{self.max_queued:,} records wait for redis: the oldest dropped"), WHERE
            )
        if not self._writing():
            self._wrote = asyncio.Event()
            self._writer = asyncio.get_running_loop().create_task(self._write())

    async def flush(self) -> None:
        """Return once every record queued before this call is written (or lost)."""
        target = self._queued
        while self._done < target and self._writing():
            await self._wrote.wait()

    async def close(self, timeout_s: float) -> None:
        """At shutdown: the queued records written (for up to ``timeout_s``), then the writer
        stopped, before the client is closed under it."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.flush(), timeout_s)
        writer = self._writer
        if writer is not None and not writer.done():
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)

    def _writing(self) -> bool:
        return self._writer is not None and not self._writer.done()

    async def _write(self) -> None:
        """Write what is queued, then what was queued meanwhile, until nothing is."""
        try:
            while self._queue:
                await asyncio.sleep(0)  # the answers ready to finish now queue theirs first
                batch, self._queue = self._queue, []
                try:
                    for start in range(0, len(batch), CHUNK):
                        await self._send(batch[start : start + CHUNK])
                except StoreUnavailable as exc:
                    self.on_error(exc, WHERE)
                except Exception:  # a bug here must not stop the writer for good
                    log.exception("attribution records not written")
                finally:  # written, failed or cancelled: done with, for flush
                    self._done += len(batch)
                    self._wrote.set()
                    self._wrote = asyncio.Event()
        finally:
            self._writer = None
            self._wrote.set()

    async def _send(self, batch: list[tuple[list[str], list[Any]]]) -> None:
        self.writes += 1
        with failures("recommendation not recorded"):
            await run_scripts(self.client, self._serve, batch)

    def _call(self, served: Served) -> tuple[list[str], list[Any]]:
        """The script's keys and arguments for one record."""
        keys = self.keys
        s = served
        counting = bool(s.experiment_id) and self.implicit
        k = [keys.recommendation(s.unit, s.recommendation_id), keys.events_stream(keys.shard(s.unit))]
        if counting:
            shard = keys.shard(s.unit)
            k += [
                keys.experiment_user(s.experiment_id, s.unit),
                keys.experiment_totals(s.experiment_id, s.group, shard),
            ]
        now = time.time()
        record = [s.experiment_id, s.group, s.model_version, s.strategy]
        values: list[list[str]] = []
        if self.implicit:
            stamp = repr(now)
            for position, item in enumerate(s.item_ids):
                event = {
                    "event_id": f"{s.recommendation_id}-{position}",
                    "user_id": s.unit,
                    "item_id": item,
                    "event": EXPOSURE,
                    "value": "",
                    "timestamp": stamp,
                    "received_at": stamp,
                    "model_version": s.model_version,
                    "recommendation_id": s.recommendation_id,
                    "position": str(position),
                    "experiment_id": s.experiment_id,
                    "variant": s.group,
                    "list_version": s.model_version,
                }
                values.append([event[name] for name in STREAM_FIELDS])
        args: list[Any] = [self.record_ttl_s, self.experiment_ttl_s, int(counting), *record]
        return k, [*args, _NAMES, json.dumps(values)]

    async def totals(self, experiment_id: str, groups: Sequence[str]) -> dict[str, dict[str, float]]:
        """Each group's counters summed over the shards. Raises StoreUnavailable (or StoreFailed)."""
        out: dict[str, dict[str, float]] = {}
        with failures("experiment counters not read"):
            async with self.client.pipeline(transaction=False) as pipe:
                for group in groups:
                    for key in self.keys.all_experiment_totals(experiment_id, group):
                        pipe.hgetall(key)
                replies = await pipe.execute()
        per_group = len(self.keys.all_experiment_totals(experiment_id, groups[0])) if groups else 0
        for g, group in enumerate(groups):
            summed: dict[str, float] = {}
            for reply in replies[g * per_group : (g + 1) * per_group]:
                for field, value in reply.items():
                    summed[field] = summed.get(field, 0.0) + float(value)
            out[group] = summed
        return out
