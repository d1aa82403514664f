"""How often exploration has shown each low-exposure item, in Redis: a hash of item_id ->
times shown in an exploration slot, and the set of items shown ``cap`` times (they are not
explored again). Both keys share one hash tag, so one Lua call updates them on a single
server and on a Redis Cluster alike.

Each process reads the set at most once per ``refresh_s`` (the cap is a soft bound: between
two reads, other processes may show an item a few times more). Counting is best effort: a
Redis failure while counting does not fail the recommendation that was served.
"""

from __future__ import annotations

import time

from app.store.connect import AsyncClient, failures
from app.store.keys import Keys

# KEYS: counts hash, saturated set. ARGV: cap, then item ids. Returns nothing.
_SHOWN = """
local cap = tonumber(ARGV[1])
for i = 2, #ARGV do
  if redis.call('HINCRBY', KEYS[1], ARGV[i], 1) >= cap then
    redis.call('SADD', KEYS[2], ARGV[i])
  end
end
return 0
"""


class ExposureStore:
    def __init__(self, client: AsyncClient, keys: Keys, *, cap: int, refresh_s: float) -> None:
        self.client, self.keys, self.cap, self.refresh_s = client, keys, cap, refresh_s
        self._shown = client.register_script(_SHOWN)
        self._saturated: frozenset[str] = frozenset()
        self._read_at = -float("inf")

    async def saturated(self) -> frozenset[str]:
        """Items shown ``cap`` times (cached for ``refresh_s``; the last known set if Redis
        fails: StoreUnavailable / StoreFailed are raised after the cache is kept)."""
        if time.monotonic() - self._read_at < self.refresh_s:
            return self._saturated
        self._read_at = time.monotonic()  # an outage is not retried on every request
        with failures("read exposure"):
            members = await self.client.smembers(self.keys.exposure_saturated())
        self._saturated = frozenset(str(m) for m in members)  # decode_responses: already str
        return self._saturated

    @property
    def last_saturated(self) -> frozenset[str]:
        """The set as last read (empty before the first read)."""
        return self._saturated

    async def shown(self, item_ids: list[str]) -> None:
        """Count one exposure of each item."""
        if item_ids:
            keys = [self.keys.exposure_counts(), self.keys.exposure_saturated()]
            with failures("count exposure"):
                await self._shown(keys=keys, args=[self.cap, *item_ids])

    async def counts(self, item_ids: list[str]) -> list[int]:
        """Times each item was shown in an exploration slot."""
        with failures("read exposure"):
            values = await self.client.hmget(self.keys.exposure_counts(), item_ids)
        return [int(v or 0) for v in values]
