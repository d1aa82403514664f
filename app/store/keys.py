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
        # Built once: feedback batches name several keys per event.
        self._tags = [f"{prefix}:{{s{shard:03d}}}" for shard in range(shards)]

    def shard(self, user_id: str) -> int:
        return zlib.crc32(user_id.encode()) % self.shards

    def _tagged(self, shard: int) -> str:
        return self._tags[shard]

    def events_stream(self, shard: int) -> str:
        """Append-only record of accepted events of one shard (the retraining input)."""
        return f"{self._tagged(shard)}:events"

    def all_streams(self) -> list[str]:
        return [self.events_stream(s) for s in range(self.shards)]

    # ``shard``: the user's shard when the caller has it already (a batch names several keys
    # per event; the hash is the same for all of them).
    def recent(self, user_id: str, *, shard: int | None = None) -> str:
        """Bounded list of the user's latest events (live personalization)."""
        return f"{self._tagged(self.shard(user_id) if shard is None else shard)}:recent:{user_id}"

    def seen_event(self, user_id: str, event_id: str, *, shard: int | None = None) -> str:
        """Idempotency marker of one event id of one user (expires)."""
        return f"{self._tagged(self.shard(user_id) if shard is None else shard)}:seen:{user_id}:{event_id}"

    # -- attribution and experiments (app.store.attribution, app.store.experiments) ----------
    def recommendation(self, unit: str, recommendation_id: str, *, shard: int | None = None) -> str:
        """Record of one served list (experiment, variant, model version; expires), under
        the shard of the user or session it was served to: the feedback of that user reads
        it in the same Lua call that stores the event."""
        return f"{self._tagged(self.shard(unit) if shard is None else shard)}:rec:{recommendation_id}"

    def experiment_user(self, experiment_id: str, unit: str, *, shard: int | None = None) -> str:
        """One user's (or session's) counts in one experiment: impressions and outcomes."""
        return f"{self._tagged(self.shard(unit) if shard is None else shard)}:exp:{experiment_id}:u:{unit}"

    def experiment_totals(self, experiment_id: str, variant: str, shard: int) -> str:
        """A variant's sums over its users (n, sum x, sum x^2, sum xy) of one shard: kept per
        shard so a user's counts and the sums they feed share one hash tag (Redis Cluster)."""
        return f"{self._tagged(shard)}:exp:{experiment_id}:v:{variant}"

    def all_experiment_totals(self, experiment_id: str, variant: str) -> list[str]:
        return [self.experiment_totals(experiment_id, variant, s) for s in range(self.shards)]

    def experiments(self) -> str:
        """Hash of experiment definitions: experiment id -> JSON (status included)."""
        return f"{self.prefix}:experiments"

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
